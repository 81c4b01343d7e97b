"""What the batch APIs of mail services share: one body with per-recipient slots.

The engine hands a provider finished messages, one per recipient, each with its own
links and merge fields already filled in. Mailgun, SendGrid and Amazon SES take one
body per request and fill per-recipient values into it themselves. `shared` recovers
that body from the finished messages: the text they have in common, with a slot
wherever they differ. It reads the final, inlined HTML, so a service's merge tags go
in only after inlining (premailer would percent-encode them inside hrefs), and it is
exact: putting recipient r's values into the slots gives back r's text byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr

from campaign.audience import addresses
from campaign.errors import ProviderError
from campaign.message import Message

STAMPED_BY_SERVICE = frozenset({"date", "message-id"})
"""Headers that every API service writes itself when it actually sends the message
(so the Date is the sending time and the Message-ID is the one its events report)."""

ANCHOR = 32
"""Characters of common text that must follow a slot before it is closed."""

WINDOW = 8192
"""Longest value a slot is searched for; longer differences become one tail slot."""


class UnsupportedFeature(ProviderError):
    """The message needs something this service cannot do. Named, never silently dropped."""

    def __init__(self, service: str, feature: str) -> None:
        super().__init__(f"{service} cannot send this campaign: {feature}")


class Unsendable(Exception):
    """This one message cannot go through this service as it stands: it fails that recipient
    alone, with this reason (which names the address and what to do)."""


ELLIPSIS = "\u2026"


def transport_address(address: str, service: str, *, smtputf8: bool = False) -> str:
    """`address` as `service` carries it (`addresses.transport`); Unsendable, naming the
    address and what to do, where it cannot."""
    try:
        return addresses.transport(address, smtputf8=smtputf8)
    except addresses.NeedsSMTPUTF8:
        raise Unsendable(
            f"{address}: {service} cannot deliver to an address with non-ASCII characters "
            "before the @ (it lacks SMTPUTF8); ask the subscriber for another address, or send "
            "through an SMTP server that announces SMTPUTF8"
        ) from None
    except addresses.InvalidAddress as exc:
        raise Unsendable(f"{exc}; correct or delete this subscriber") from None


def fit_name(name: str, limit: int, forbidden: str = "") -> str:
    """A display name within a service's limits: cut to `limit` characters with an ellipsis;
    dropped (the address alone) when it holds a character the service misreads."""
    if any(c in name for c in forbidden):
        return ""
    return name if len(name) <= limit else name[: limit - 1].rstrip() + ELLIPSIS


@dataclass(frozen=True, slots=True)
class Shared:
    """`parts[0] + values[r][0] + parts[1] + ... + parts[-1]` is text r."""

    parts: list[str]
    values: list[list[str]]

    @property
    def slots(self) -> int:
        return len(self.parts) - 1

    def render(self, tag: Callable[[int], str]) -> str:
        """The shared body with `tag(i)` (a service's merge tag) in slot i."""
        out = [self.parts[0]]
        for i, part in enumerate(self.parts[1:]):
            out += (tag(i), part)
        return "".join(out)

    def fill(self, recipient: int) -> str:
        """Recipient's own text again (what the service will produce)."""
        return self.render(lambda i: self.values[recipient][i])


def shared(texts: Sequence[str]) -> Shared:
    """Split `texts` into common parts and per-text slot values (see module docstring)."""
    if not texts:
        return Shared([""], [])
    ref = texts[0]
    if all(text == ref for text in texts):
        return Shared([ref], [[] for _ in texts])
    pos = [0] * len(texts)
    parts: list[str] = []
    values: list[list[str]] = [[] for _ in texts]
    while True:
        run = _common_run(texts, pos)
        parts.append(ref[pos[0] : pos[0] + run])
        pos = [p + run for p in pos]
        if all(p == len(text) for p, text in zip(pos, texts, strict=True)):
            return Shared(parts, values)
        ends = _resync(texts, pos)
        for i, text in enumerate(texts):
            values[i].append(text[pos[i] : ends[i]])
        pos = ends


def _common_prefix(a: str, i: int, b: str, j: int, limit: int) -> int:
    """Length (at most `limit`) of the common prefix of a[i:] and b[j:], compared in C-sized steps."""
    n, step = 0, 4096
    while step:
        while n + step <= limit and b.startswith(a[i + n : i + n + step], j + n):
            n += step
        step //= 2
    return n


def _common_run(texts: Sequence[str], pos: list[int]) -> int:
    ref, start = texts[0], pos[0]
    run = len(ref) - start
    for text, p in zip(texts[1:], pos[1:], strict=True):
        run = _common_prefix(ref, start, text, p, min(run, len(text) - p))
        if run == 0:
            break
    return run


def _resync(texts: Sequence[str], pos: list[int]) -> list[int]:
    """Where each text rejoins the common text after a difference at `pos`.

    The reference's value length k is the smallest for which the next ANCHOR characters
    of the reference occur in every other text within WINDOW; the first occurrence
    there ends that text's value. Anything unresolved becomes one slot to the end.
    """
    ref, start = texts[0], pos[0]
    ends = [len(text) for text in texts]
    k = 0
    while k <= WINDOW and start + k < len(ref):
        anchor = ref[start + k : start + k + ANCHOR]
        tail = len(anchor) < ANCHOR  # near the end: the text must end with it
        found = [start + k]
        for text, p in zip(texts[1:], pos[1:], strict=True):
            if tail:
                q = len(text) - len(anchor) if text.endswith(anchor) else -1
                q = q if q >= p else -1
            else:
                q = text.find(anchor, p, p + WINDOW + ANCHOR)
            if q < 0:
                break
            found.append(q)
        else:
            return found
        k += 1
    return ends


def sender(address: str) -> tuple[str, str]:
    """("Name", "email") from a From value such as `Name <email>`."""
    name, email = parseaddr(address)
    return name, email


def address_object(email: str, name: str = "") -> dict[str, str]:
    """An address as SendGrid, Brevo and Mandrill take it: {"email", "name"}, no empty name."""
    return {"email": email, "name": name} if name else {"email": email}


def sender_object(address: str) -> dict[str, str]:
    """A From or Reply-To value (`Name <email>`) as an `address_object`."""
    name, email = sender(address)
    return address_object(email, name)


def passed_headers(message: Message) -> dict[str, str]:
    """The message's headers that a service takes as custom headers."""
    return {k: v for k, v in message.headers.items() if k.lower() not in STAMPED_BY_SERVICE}


def split_headers(
    batch: Sequence[Message], service: str
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Headers equal for the whole batch, and each message's own (the rest).

    A batch request carries one sender, reply-to and campaign, and one set of header
    names; a batch that differs there is refused rather than sent half right.
    """
    first = batch[0]
    for what, get in (
        ("senders", lambda m: m.from_),
        ("reply-to", lambda m: m.reply_to),
        ("campaigns", lambda m: m.campaign),
        ("header names", lambda m: set(passed_headers(m))),
    ):
        if any(get(m) != get(first) for m in batch[1:]):
            raise UnsupportedFeature(service, f"messages of one batch with different {what}")
    all_headers = [passed_headers(m) for m in batch]
    common = {
        name: value
        for name, value in all_headers[0].items()
        if all(h[name] == value for h in all_headers)
    }
    own = [{k: v for k, v in h.items() if k not in common} for h in all_headers]
    return common, own
