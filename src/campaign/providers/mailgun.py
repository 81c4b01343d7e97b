"""Mailgun: POST /v3/{domain}/messages, up to 1,000 recipients per call.

A batch is one shared message with `recipient-variables`: Mailgun then sends each
`to` address its own copy, with `%recipient.KEY%` filled from that recipient's
variables, in the body, the subject and header fields alike. Without
recipient-variables every recipient would see the whole To list, so a request is
never built without them. Our send id reaches Mailgun's events as the custom
variable `send_id` (v:send_id, per recipient). A recipient whose own values hold
`%recipient` goes alone, without recipient-variables, so Mailgun carries it as it is
(providers.substituting).

Which unknown deliveries Mailgun took (`known`) is read from its Events API (GET
/v3/{domain}/events): the `accepted` events of the minutes each request was made in, a
page of at most 300 at a time, matched by the send id in their user-variables. Mailgun
filters events by recipient, subject, tags and the like, never by a variable, so a time
window read once serves every delivery in it: the cost is the domain's traffic in those
minutes, not one request per delivery.

A 403 is Mailgun refusing the account or domain, in its words ("not allowed to send
large batches yet", a sandbox domain's authorised recipients), not bad credentials
(that is 401). A 429 holds the send until the Retry-After or the date in its message
("try again after <date>").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.base import CLOCK_MARGIN, windows
from campaign.providers.batching import passed_headers, shared, split_headers
from campaign.providers.substituting import Clash, SubstitutingProvider

REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
EVENTS_PAGE = 300
"""Events per page of the Events API: its `limit` maximum."""
EVENTS_MAX_PAGES = 200
"""Pages read before giving up (60,000 events): beyond, the windows are too busy to read."""
EVENTS_SETTLE = timedelta(minutes=30)
"""How long Mailgun's event log may lag: events reach its storage by different routes and are
inserted into pages already served, so its docs ("Event Polling") trust a page only once its
events are older than a threshold, half an hour in their example."""


class Options(base.HTTPOptions):
    """`base_url`, when set, overrides the region's API host."""

    domain: str
    """The sending domain as set up in Mailgun (e.g. mg.example.org)."""
    region: Literal["us", "eu"] = "us"


class MailgunProvider(SubstitutingProvider):
    name = "mailgun"
    max_batch = 1000
    markers = ("%recipient",)
    syntax = re.compile(r"%recipient[^%]*%?")
    Options: ClassVar[type[base.Options]] = Options
    default_base_url = REGIONS["us"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client.auth = httpx.BasicAuth("api", self.secret("MAILGUN_API_KEY"))

    @property
    def base_url(self) -> str:
        options: Options = self.options  # type: ignore[assignment]
        return (options.base_url or REGIONS[options.region]).rstrip("/")

    @property
    def _domain_path(self) -> str:
        options: Options = self.options  # type: ignore[assignment]
        return f"/v3/{quote(options.domain, safe='')}"

    def _post(self, fields: list[tuple[str, str]]) -> httpx.Request:
        return self.client.build_request(
            "POST",
            f"{self._domain_path}/messages",
            files=[(name, (None, value)) for name, value in fields],
        )

    def _single(self, m: Message) -> httpx.Request:
        """One message as it is: no recipient-variables, so nothing in it is substituted."""
        fields = [("from", m.from_), ("to", m.to), ("subject", m.subject)]
        fields += [("text", m.text), ("html", m.html)]
        if m.reply_to:
            fields.append(("h:Reply-To", m.reply_to))
        fields += [(f"h:{name}", value) for name, value in passed_headers(m).items()]
        fields += [("v:send_id", m.send_id), ("v:campaign", m.campaign)]
        return self._post(fields)

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        if len(batch) == 1:
            return self._single(batch[0])
        if len({m.to_email.lower() for m in batch}) != len(batch):
            raise Clash  # recipient-variables are keyed by address: one request each
        variables: list[dict[str, str]] = [{"send_id": m.send_id} for m in batch]
        fields: list[tuple[str, str]] = [("from", batch[0].from_)]
        fields += [("to", m.to) for m in batch]
        for field, prefix, texts in (
            ("subject", "s", [m.subject for m in batch]),
            ("text", "t", [m.text for m in batch]),
            ("html", "h", [m.html for m in batch]),
        ):
            body = shared(texts)
            fields.append((field, self.render(body, lambda i, p=prefix: f"%recipient.{p}{i}%")))  # type: ignore[misc]
            for values, own in zip(body.values, variables, strict=True):
                own.update({f"{prefix}{i}": value for i, value in enumerate(values)})
        common, own_headers = split_headers(batch, self.name)
        if batch[0].reply_to:
            fields.append(("h:Reply-To", batch[0].reply_to))
        fields += [(f"h:{name}", value) for name, value in common.items()]
        for name in own_headers[0]:
            fields.append((f"h:{name}", f"%recipient.h:{name}%"))
        for headers, own in zip(own_headers, variables, strict=True):
            own.update({f"h:{name}": value for name, value in headers.items()})
        fields += [("v:send_id", "%recipient.send_id%"), ("v:campaign", batch[0].campaign)]
        recipient_variables = {m.to_email: v for m, v in zip(batch, variables, strict=True)}
        fields.append(("recipient-variables", json.dumps(recipient_variables, ensure_ascii=False)))
        return self._post(fields)

    def read_error(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result] | None:
        if response.status_code == 403:
            raise ProviderError(f"mailgun refused the send (403): {self.error_message(response)}")
        return None

    def retry_after(self, response: httpx.Response) -> float | None:
        """Retry-After, else the date in Mailgun's words ("try again after <date>")."""
        seconds = super().retry_after(response)
        return (
            seconds
            if seconds is not None
            else base.retry_after_in_text(self.error_message(response))
        )

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        if response.status_code == 404:
            raise ProviderError(
                f"mailgun does not know the domain {self.options.domain!r} at {self.base_url} "  # type: ignore[attr-defined]
                '(check [provider] domain, and region = "eu" for EU domains)'
            )
        if response.status_code != 200:
            raise ProviderError(
                f"mailgun refused the batch ({response.status_code}): {self.error_message(response)}"
            )
        try:
            message_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            raise ProviderError(
                f"mailgun answered 200 without a message id: {response.text[:200]}"
            ) from None
        return [base.Result(m.send_id, base.Status.ACCEPTED, provider_id=message_id) for m in batch]

    async def known(self, unknown: Sequence[base.Unknown]) -> set[str]:
        """The `accepted` events of each window (oldest first, 300 a page, following
        `paging.next` until an empty page), matched by user-variables `send_id`; a window
        stops being read once all its deliveries are found."""
        found: set[str] = set()
        pages = 0
        for begin, end, ids in windows(unknown):
            url: str = f"{self._domain_path}/events"
            params: dict[str, str | int] | None = {
                "event": "accepted",
                "begin": math.floor(begin.timestamp()),
                "end": math.ceil(end.timestamp()),
                "ascending": "yes",
                "limit": EVENTS_PAGE,
            }
            while not ids <= found:
                if pages == EVENTS_MAX_PAGES:
                    raise ProviderError(
                        f"mailgun's event log holds more than {EVENTS_MAX_PAGES * EVENTS_PAGE} "
                        "events in the minutes the unknown deliveries were sent; nothing was resent"
                    )
                pages += 1
                items, following = _page(await self.lookup("event log", url, params))
                if not items:
                    break
                for item in items:
                    variables = item.get("user-variables") if isinstance(item, dict) else None
                    if isinstance(variables, dict) and variables.get("send_id") in ids:
                        found.add(variables["send_id"])
                # The next page is asked of our own host (its path only): the key goes nowhere else.
                url, params = httpx.URL(following).raw_path.decode("ascii"), None
        self._settled([u for u in unknown if u.send_id not in found])
        return found

    @staticmethod
    def _settled(missing: Sequence[base.Unknown]) -> None:
        """Raise when deliveries not found were sent too recently for the event log to tell:
        resending them on its word could mail someone twice."""
        recent = max((u.until for u in missing), default=None)
        if recent is None:
            return
        trusted_from = recent + CLOCK_MARGIN + EVENTS_SETTLE
        if trusted_from > datetime.now(UTC):
            raise ProviderError(
                f"{len(missing)} unknown deliveries are not in mailgun's event log, which may "
                f"show events up to {EVENTS_SETTLE.total_seconds() / 60:g} minutes late; nothing was "
                f"resent: run again after {trusted_from:%H:%M} UTC"
            )


def _page(page: Any) -> tuple[list[Any], str]:
    """A page of the Events API: its items and the next page's URL (always given, its docs say)."""
    items = page.get("items") if isinstance(page, dict) else None
    paging = page.get("paging") if isinstance(page, dict) else None
    following = paging.get("next") if isinstance(paging, dict) else None
    if not isinstance(items, list) or not isinstance(following, str):
        raise ProviderError(
            f"mailgun's event log answered an unreadable page: {str(page)[:200]}; nothing was resent"
        )
    return items, following
