"""Services that fill per-recipient values into one shared body: SES, SendGrid, Mailgun.

Merge values are data. A service expands its own template syntax wherever it sees it, so
a subscriber named `{{x}}` (SES), `{%x%}` (SendGrid) or `%recipient.x%` (Mailgun), put
into the shared body or its values, could be read as a tag; none of these services
documents an escape. So a message whose own values hold the service's syntax (its
merge fields, name or subject, or any slot value) goes alone, through the service's
request for one message, which carries it as it is (SES SendEmail, a SendGrid
personalization without substitutions, a Mailgun message without recipient-variables).
If the shared body would read as more than our own tags (the campaign's own text, or a
brace next to a tag), the batch goes one by one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import ClassVar

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers.base import HTTPProvider, Result, Status
from campaign.providers.batching import Shared


class Clash(Exception):
    """The shared body with our tags in it would read as other tags too: send one by one."""


class Exposed(Exception):
    """These recipients' own values (by index in the batch) hold the service's syntax."""

    def __init__(self, indices: set[int]) -> None:
        super().__init__(sorted(indices))
        self.indices = indices


HALTING = (Status.THROTTLED, Status.BLOCKED)
"""Answers after which the rest of a batch is not sent now."""


class SubstitutingProvider(HTTPProvider):
    markers: ClassVar[tuple[str, ...]]
    """Text that opens or closes a tag of the service's template syntax."""
    syntax: ClassVar[re.Pattern[str]]
    """What the service reads as its own tag (at least every form our tags take)."""
    escape: ClassVar[str] = ""
    """A character that, before a tag, makes it literal text (Handlebars' backslash)."""

    def exposed(self, values: Sequence[str]) -> bool:
        """Whether any of one recipient's values holds the service's template syntax."""
        return any(marker in value for value in values for marker in self.markers)

    def render(self, body: Shared, tag: Callable[[int], str]) -> str:
        """The shared body with our tags. Clash when the service would read any other tag in
        it; Exposed when some recipients' values hold its syntax."""
        template = body.render(tag)
        if not body.slots:
            return template  # no values sent: the service substitutes nothing
        found = list(self.syntax.finditer(template))
        if [m.group(0) for m in found] != [tag(i) for i in range(body.slots)]:
            raise Clash
        if self.escape and any(template[m.start() - 1 : m.start()] == self.escape for m in found):
            raise Clash
        exposed = {r for r, values in enumerate(body.values) if self.exposed(values)}
        if exposed:
            raise Exposed(exposed)
        return template

    def holds_syntax(self, message: Message) -> bool:
        """The cheap look first: the message's merge values, name and subject (short strings;
        the 50 KB bodies are left to `render`, which sees only what differs)."""
        return self.exposed([message.subject, message.to_name, *message.merge.values()])

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        together = [m for m in batch if not self.holds_syntax(m)]
        groups = [together] if together else []
        groups += [[m] for m in batch if self.holds_syntax(m)]
        results: dict[str, Result] = {}
        halt: Result | None = None
        while groups:
            group = groups.pop(0)
            if halt is not None:
                results.update({m.send_id: replace(halt, send_id=m.send_id) for m in group})
                continue
            try:
                answers = await super().send(group)
            except Clash:
                if len(group) == 1:
                    raise
                groups[:0] = [[m] for m in group]
                continue
            except Exposed as exposed:
                rest = [m for i, m in enumerate(group) if i not in exposed.indices]
                alone = [[m] for i, m in enumerate(group) if i in exposed.indices]
                groups[:0] = ([rest] if rest else []) + alone
                continue
            except ProviderError as exc:
                if not results:
                    raise
                # Part of the batch went out: keep those, and hold the rest back.
                answers = self._all(group, Status.BLOCKED, str(exc))
            results.update({r.send_id: r for r in answers})
            halt = next((r for r in answers if r.status in HALTING), None)
        return [results[m.send_id] for m in batch]
