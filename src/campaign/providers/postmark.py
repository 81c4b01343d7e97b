"""Postmark: POST /email/batch, up to 500 messages per request.

Each message goes as it is (its own HtmlBody, TextBody, To and headers); our send
id rides in Metadata, which Postmark's webhooks report back. The reply is 200 even
when some messages failed: each one has its own ErrorCode. A 422 on the whole
batch means Postmark refused the request (sender signature, account): the send stops
with Postmark's message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import orjson

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import STAMPED_BY_SERVICE

TOKEN_ENV = "POSTMARK_SERVER_TOKEN"
SEARCHES_AT_ONCE = 8
"""Concurrent message searches when asking which unknown deliveries Postmark has."""

REJECTED_CODES = {300: "invalid email request", 406: "inactive recipient"}
"""Refused for this recipient only: never retried."""
RETRY_CODES = {100: "maintenance", 429: "rate limit exceeded"}
STOP_CODES = {
    10: "bad or missing server token",
    400: "sender signature not found",
    401: "sender signature not confirmed",
    402: "invalid JSON",
    403: "incompatible JSON",
    405: "not allowed to send",
    409: "JSON required",
    410: "too many batch messages",
    412: "account is pending",
    413: "account may not send",
}
"""Codes that no message of the send can get past: stop and say why."""


def recipient(message: Message) -> str:
    """The To field: the name quoted and left in Unicode (Postmark encodes it)."""
    if not message.to_name:
        return message.to_email
    name = message.to_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{name}" <{message.to_email}>'


class Options(base.Options):
    base_url: str | None = None
    """Default https://api.postmarkapp.com."""
    message_stream: str = "broadcast"
    """Postmark's stream for bulk mail; "outbound" is the transactional one."""
    track_opens: bool | None = None
    track_links: str | None = None
    """None, HtmlAndText, HtmlOnly or TextOnly; unset: the server's setting."""


class PostmarkProvider(base.HTTPProvider):
    name = "postmark"
    max_batch = 500
    wants_json = True
    Options: ClassVar[type[base.Options]] = Options
    default_base_url = "https://api.postmarkapp.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client.headers["X-Postmark-Server-Token"] = self.secret(TOKEN_ENV)
        self.client.headers["Accept"] = "application/json"

    def payload(self, message: Message) -> dict[str, Any]:
        options: Any = self.options
        item: dict[str, Any] = {
            "From": message.from_,
            "To": recipient(message),
            "Subject": message.subject,
            # Escaped once per campaign by the engine (Message.json_bodies) when it made the message.
            "HtmlBody": orjson.Fragment(message.json_bodies[0])
            if message.json_bodies
            else message.html,
            "TextBody": orjson.Fragment(message.json_bodies[1])
            if message.json_bodies
            else message.text,
            "MessageStream": options.message_stream,
            "Tag": message.campaign,
            "Metadata": {"send_id": message.send_id, "campaign": message.campaign},
            "Headers": [
                {"Name": name, "Value": value}
                for name, value in message.headers.items()
                if name.lower() not in STAMPED_BY_SERVICE
            ],
        }
        if message.reply_to:
            item["ReplyTo"] = message.reply_to
        if options.track_opens is not None:
            item["TrackOpens"] = options.track_opens
        if options.track_links is not None:
            item["TrackLinks"] = options.track_links
        return item

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        # orjson: encoding 500 bodies of 50 KB was half the CPU of a send with the json module
        # (and still a third of it with orjson before the bodies came escaped in json_bodies).
        body = orjson.dumps([self.payload(m) for m in batch])
        headers = {"Content-Type": "application/json"}
        return self.client.build_request("POST", "/email/batch", content=body, headers=headers)

    def read_error(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result] | None:
        if response.status_code == 422:
            code = self._error_code(response)
            raise ProviderError(
                f"Postmark refused the batch (422, ErrorCode {code}): {self.error_message(response)}"
            )
        return None

    @staticmethod
    def _error_code(response: httpx.Response) -> object:
        try:
            body = response.json()
        except ValueError:
            return None
        return body.get("ErrorCode") if isinstance(body, dict) else None

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        if response.status_code != 200:
            raise ProviderError(
                f"Postmark answered {response.status_code}: {self.error_message(response)}"
            )
        try:
            answers = response.json()
        except ValueError:
            answers = None
        if not isinstance(answers, list) or len(answers) != len(batch):
            # Postmark took the request but said nothing we can read: some may have gone out.
            return self._all(
                batch, base.Status.UNKNOWN, "Postmark's reply to the batch was unreadable"
            )
        results = []
        stop = ""
        for message, answer in zip(batch, answers):
            code = answer.get("ErrorCode") if isinstance(answer, dict) else None
            text = str(answer.get("Message", "")) if isinstance(answer, dict) else ""
            if code == 0:
                results.append(
                    base.Result(
                        message.send_id,
                        base.Status.ACCEPTED,
                        provider_id=str(answer.get("MessageID")),
                    )
                )
            elif code in STOP_CODES:
                stop = (
                    stop
                    or f"Postmark refused the send (ErrorCode {code}, {STOP_CODES[code]}): {text}"
                )
                results.append(base.Result(message.send_id, base.Status.BLOCKED, reason=stop[:500]))
            elif code in RETRY_CODES:
                reason = f"Postmark ErrorCode {code} ({RETRY_CODES[code]})"
                status = base.Status.THROTTLED if code == 429 else base.Status.RETRY
                results.append(base.Result(message.send_id, status, reason=reason))
            else:
                label = REJECTED_CODES.get(code, "error") if isinstance(code, int) else "error"
                reason = f"Postmark ErrorCode {code} ({label}): {text}"[:500]
                results.append(base.Result(message.send_id, base.Status.REJECTED, reason=reason))
        if stop and not any(r.status is base.Status.ACCEPTED for r in results):
            # Nothing went out, and nothing will until the account is fixed: stop the send.
            raise ProviderError(stop)
        return results

    async def known(self, unknown: Sequence[base.Unknown]) -> set[str]:
        """Postmark's outbound message search by our send id in the metadata
        (`GET /messages/outbound?metadata_send_id=...`), a few searches at a time."""
        turns = asyncio.Semaphore(SEARCHES_AT_ONCE)

        async def taken(send_id: str) -> bool:
            async with turns:
                found = await self.lookup(
                    "message search",
                    "/messages/outbound",
                    {"count": 1, "offset": 0, "metadata_send_id": send_id},
                )
            return bool(found.get("TotalCount"))

        send_ids = [u.send_id for u in unknown]
        found = await asyncio.gather(*(taken(send_id) for send_id in send_ids))
        return {send_id for send_id, yes in zip(send_ids, found, strict=True) if yes}
