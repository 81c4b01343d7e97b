"""SendGrid v3: POST /v3/mail/send, up to 1,000 personalizations per request.

One request carries one content (text and HTML) and a personalization per
recipient: its To, its own headers (List-Unsubscribe...), its subject, its
`substitutions` for the slots where our messages differ (links, merge fields) and
`custom_args` carrying our send id, which SendGrid's event webhook reports back.
SendGrid answers 202 with an empty body: accepted, one X-Message-Id for the request.

A recipient whose own values (name, merge fields, subject) hold `{%` or `%}` goes alone,
a personalization without substitutions, so SendGrid carries it as it is
(providers.substituting); a batch whose values pass SendGrid's 10,000 bytes of
substitutions goes one by one. A recipient name with a comma or semicolon,
which SendGrid's documented limits forbid, is left out (the address alone).

Which unknown deliveries SendGrid took (`known`) is asked of its Email Activity API (GET
/v3/messages), a paid add-on: our send ids as `unique_args['send_id']="..."` terms joined by
OR, 50 a query. Its list names each message's recipient (`to_email`) but not its custom
args, so a delivery is known when a message carrying one of the asked ids went to its
address. The API takes 6 requests a minute: `known` is given at most 300 deliveries, and a
429 (a second call within the minute) stops it, those already settled staying settled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import (
    Unsendable,
    address_object,
    fit_name,
    sender_object,
    shared,
    split_headers,
)
from campaign.providers.substituting import Clash, SubstitutingProvider

SUBSTITUTION_LIMIT = 10_000
"""Bytes of substitutions (keys and values) SendGrid takes per personalization."""


NAME_FORBIDS = ",;"
"""Characters SendGrid's documented limits forbid in to.name."""
NAME_LIMIT = 998
"""A header line's length (RFC 5322): longer names are cut with an ellipsis."""
ACTIVITY_IDS = 50
"""Send ids one Email Activity query asks for (OR): its URL stays under 4 KB."""
ACTIVITY_LIMIT = 1000
"""Most messages one query lists (its `limit` maximum); a full list may hide more."""
ACTIVITY_QUERIES = 6
"""Queries a minute: "The current limit is 6 requests per minute" (Email Activity API)."""
ACTIVITY_REFUSED = (
    "the Email Activity API needs SendGrid's paid Email Activity history add-on and a key "
    "with Email Activity access: without it sendgrid cannot tell which unknown deliveries "
    "it took"
)


class SendGridProvider(SubstitutingProvider):
    name = "sendgrid"
    max_batch = 1000
    default_base_url = "https://api.sendgrid.com"
    """EU regional subusers set `base_url = "https://api.eu.sendgrid.com"`."""
    known_at_once = ACTIVITY_QUERIES * ACTIVITY_IDS
    markers = ("{%", "%}")
    syntax = re.compile(r"\{%[^%}]*%\}|\{%|%\}")

    def adapt(self, message: Message) -> Message:
        name = fit_name(message.to_name, NAME_LIMIT, NAME_FORBIDS)
        return message if name == message.to_name else replace(message, to_name=name)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client.headers["Authorization"] = f"Bearer {self.secret('SENDGRID_API_KEY')}"

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        common, own_headers = split_headers(batch, self.name)
        personalizations: list[dict[str, Any]] = []
        for message, headers in zip(batch, own_headers, strict=True):
            item: dict[str, Any] = {
                "to": [address_object(message.to_email, message.to_name)],
                "subject": message.subject,
                "custom_args": {"send_id": message.send_id},
            }
            if headers:
                item["headers"] = headers
            personalizations.append(item)
        content = []
        for kind, prefix, texts in (
            ("text/plain", "t", [m.text for m in batch]),
            ("text/html", "h", [m.html for m in batch]),
        ):
            body = shared(texts)

            def tag(i: int, p: str = prefix) -> str:
                return f"{{%{p}{i}%}}"

            content.append({"type": kind, "value": self.render(body, tag)})
            for item, values in zip(personalizations, body.values, strict=True):
                item.setdefault("substitutions", {}).update(
                    {tag(i): v for i, v in enumerate(values)}
                )
        for item in personalizations:
            size = sum(
                len(k.encode()) + len(v.encode()) for k, v in item.get("substitutions", {}).items()
            )
            if size > SUBSTITUTION_LIMIT:
                raise Clash  # more than SendGrid takes: each message alone, as it is
        payload: dict[str, Any] = {
            "personalizations": personalizations,
            "from": sender_object(batch[0].from_),
            "content": content,
            "custom_args": {"campaign": batch[0].campaign},
        }
        if batch[0].reply_to:
            payload["reply_to"] = sender_object(batch[0].reply_to)
        if common:
            payload["headers"] = common
        return self.client.build_request("POST", "/v3/mail/send", json=payload)

    def retry_after(self, response: httpx.Response) -> float | None:
        """SendGrid's 429 says when the window resets: X-RateLimit-Reset, in epoch seconds."""
        reset = response.headers.get("X-RateLimit-Reset")
        if reset:
            try:
                return max(0.0, float(reset) - time.time())
            except ValueError:
                pass
        return super().retry_after(response)

    def error_message(self, response: httpx.Response) -> str:
        try:
            errors = response.json()["errors"]
            return "; ".join(f"{e.get('field') or 'request'}: {e.get('message')}" for e in errors)[
                :500
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            return super().error_message(response)

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        if response.status_code != 202:
            raise ProviderError(
                f"sendgrid refused the batch ({response.status_code}): {self.error_message(response)}"
            )
        message_id = response.headers.get("X-Message-Id")
        return [base.Result(m.send_id, base.Status.ACCEPTED, provider_id=message_id) for m in batch]

    async def known(self, unknown: Sequence[base.Unknown]) -> set[str]:
        """The Email Activity API's messages carrying the send ids, 50 a query, matched to the
        deliveries by recipient address."""
        found: set[str] = set()
        why = {
            403: ACTIVITY_REFUSED,
            404: ACTIVITY_REFUSED,
            429: "it takes 6 requests a minute: run again in a minute",
        }
        for start in range(0, len(unknown), ACTIVITY_IDS):
            chunk = unknown[start : start + ACTIVITY_IDS]
            query = " OR ".join(f"unique_args['send_id']=\"{u.send_id}\"" for u in chunk)
            params = {"query": query, "limit": ACTIVITY_LIMIT}
            page = await self.lookup("Email Activity API", "/v3/messages", params, why=why)
            messages = page.get("messages") if isinstance(page, dict) else None
            if not isinstance(messages, list) or len(messages) >= ACTIVITY_LIMIT:
                raise ProviderError(
                    f"sendgrid's Email Activity API answered {str(page)[:200]}, which cannot "
                    "tell; nothing was resent"
                )
            sent_to = {str(m.get("to_email", "")).lower() for m in messages if isinstance(m, dict)}
            found.update(u.send_id for u in chunk if self._sent_to(u.email) in sent_to)
        return found

    def _sent_to(self, email: str) -> str:
        """The address as SendGrid lists it: as we sent it (domain in IDNA), any case."""
        try:
            return self.address(email).lower()
        except Unsendable:
            return ""  # never sent through SendGrid: it cannot have taken it
