"""Brevo: POST /v3/smtp/email with messageVersions, up to 1,000 versions per request.

Each recipient is one message version with its own HTML, text, subject and headers
(List-Unsubscribe, and X-Mailin-custom carrying our send id, which Brevo's webhooks
report back). The first message is also the request's default content, so versions
equal to it leave their copy out. Brevo answers 201 with a message id per version.

Brevo reads the content as its template language (`{{ params.x }}`, `{% if %}`), so a
value holding `{{` or `{%` would be expanded. In the HTML the brace is written as the
character reference `&#123;`, which shows the same; the subject and text have no
escape, so such a message fails that recipient with the reason. Names are cut to
Brevo's 70 characters with an ellipsis; a name with a comma is left out (the address
alone), so that no relay reads it as a list of addresses.

Brevo's API cannot say which unknown deliveries it took, so `known` is not implemented and
`--resend-unknown` resends them all. Its list of transactional emails (GET /v3/smtp/emails)
must be filtered by recipient, template or message id, by whole days, and gives back the
address, subject, message id, date and the request's tags; its event report (GET
/v3/smtp/statistics/events) gives the same per event. Neither returns a custom header such
as X-Mailin-custom (only webhooks report it), tags are the request's, shared by its 1,000
versions (a version has none of its own), and the message ids were in the answer that was
lost. Matching by address and day would take another email to that address for ours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import (
    Unsendable,
    UnsupportedFeature,
    address_object,
    fit_name,
    sender_object,
    split_headers,
)

SYNTAX = re.compile(r"\{(?=[{%])")
"""The brace that opens a tag of Brevo's template language."""
NAME_LIMIT = 70
"""Brevo's limit for a recipient's name."""


class BrevoProvider(base.HTTPProvider):
    name = "brevo"
    max_batch = 1000
    default_base_url = "https://api.brevo.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client.headers["api-key"] = self.secret("BREVO_API_KEY")
        self.client.headers["Accept"] = "application/json"

    def adapt(self, message: Message) -> Message:
        for field, text in (("subject", message.subject), ("text", message.text)):
            if SYNTAX.search(text):
                raise Unsendable(
                    f"{message.to_email}: brevo would read the {{{{ or {{% in this recipient's "
                    f"{field} (their name or a merge field) as its template language; correct "
                    "the value, or send this campaign through another provider"
                )
        return replace(
            message,
            to_name=fit_name(message.to_name, NAME_LIMIT, ","),
            html=SYNTAX.sub("&#123;", message.html),
        )

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        common, own_headers = split_headers(batch, self.name)
        first = batch[0]
        versions = []
        for name, value in [*common.items(), *(item for h in own_headers for item in h.items())]:
            if not value.isascii():
                # Brevo sends non-ASCII custom headers as raw 8-bit bytes.
                raise UnsupportedFeature(self.name, f"non-ASCII characters in the {name} header")
        for message, headers in zip(batch, own_headers, strict=True):
            headers = {**headers, "X-Mailin-custom": json.dumps({"send_id": message.send_id})}
            version: dict[str, Any] = {
                "to": [address_object(message.to_email, message.to_name)],
                "headers": headers,
            }
            for key, mine, default in (
                ("subject", message.subject, first.subject),
                ("htmlContent", message.html, first.html),
                ("textContent", message.text, first.text),
            ):
                if mine != default:
                    version[key] = mine
            versions.append(version)
        payload: dict[str, Any] = {
            "sender": sender_object(first.from_),
            "subject": first.subject,
            "htmlContent": first.html,
            "textContent": first.text,
            "tags": [first.campaign],
            "messageVersions": versions,
        }
        if first.reply_to:
            payload["replyTo"] = sender_object(first.reply_to)
        if common:
            payload["headers"] = common
        return self.client.build_request("POST", "/v3/smtp/email", json=payload)

    def retry_after(self, response: httpx.Response) -> float | None:
        """Brevo's 429 carries x-sib-ratelimit-reset: seconds until the window resets."""
        return base.retry_after_seconds(
            response.headers.get("Retry-After") or response.headers.get("x-sib-ratelimit-reset")
        )

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        if response.status_code not in (200, 201, 202):
            raise ProviderError(
                f"brevo refused the batch ({response.status_code}): {self.error_message(response)}"
            )
        body = response.json()
        ids = body.get("messageIds") or ([body["messageId"]] if "messageId" in body else [])
        if len(ids) != len(batch):
            raise ProviderError(f"brevo answered {len(ids)} message ids for {len(batch)} messages")
        return [
            base.Result(m.send_id, base.Status.ACCEPTED, provider_id=i)
            for m, i in zip(batch, ids, strict=True)
        ]
