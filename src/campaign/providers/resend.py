"""Resend: POST /emails/batch, up to 100 emails per request, each with its own body.

Every batch carries an Idempotency-Key derived from its send ids, so a batch sent
again (after a timeout, say) within Resend's 24 hours is not delivered twice.
Permissive batch validation lets Resend accept the valid emails of a batch and
report the others by index. Resend allows 2 requests per second by default; the
provider paces its own requests (`requests_per_second`) and honours Retry-After.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import passed_headers

QUOTAS = {"daily_quota_exceeded", "monthly_quota_exceeded"}


class Options(base.HTTPOptions):
    requests_per_second: float = Field(2.0, gt=0)
    """Resend's rate limit for the API key (2 unless Resend raised it for you)."""


def idempotency_key(batch: Sequence[Message]) -> str:
    """The same batch (same send ids, same order) always gets the same key."""
    digest = hashlib.sha256("\n".join(m.send_id for m in batch).encode()).hexdigest()
    return f"campaign-batch/{digest}"


def _tag(value: str) -> str:
    """Resend tags: ASCII letters, digits, underscores and dashes, at most 256."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)[:256]


class ResendProvider(base.HTTPProvider):
    name = "resend"
    max_batch = 100
    Options: ClassVar[type[base.Options]] = Options
    default_base_url = "https://api.resend.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client.headers["Authorization"] = f"Bearer {self.secret('RESEND_API_KEY')}"
        # 5% under the limit, so network jitter never makes two starts look closer
        self._interval = 1.05 / self.options.requests_per_second  # type: ignore[attr-defined]
        self._next_start = 0.0
        self._pace_lock = asyncio.Lock()

    async def _pace(self) -> None:
        """Start requests at most `requests_per_second`, however many batches are in flight."""
        async with self._pace_lock:
            now = time.monotonic()
            if self._next_start > now:
                await asyncio.sleep(self._next_start - now)
            self._next_start = max(now, self._next_start) + self._interval

    async def send(self, batch: Sequence[Message]) -> list[base.Result]:
        await self._pace()
        return await super().send(batch)

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        emails = []
        for m in batch:
            email: dict[str, Any] = {
                "from": m.from_,
                "to": [m.to],
                "subject": m.subject,
                "html": m.html,
                "text": m.text,
                "headers": passed_headers(m),
                "tags": [
                    {"name": "campaign", "value": _tag(m.campaign)},
                    {"name": "send_id", "value": _tag(m.send_id)},
                ],
            }
            if m.reply_to:
                email["reply_to"] = [m.reply_to]
            emails.append(email)
        headers = {"Idempotency-Key": idempotency_key(batch), "x-batch-validation": "permissive"}
        return self.client.build_request("POST", "/emails/batch", json=emails, headers=headers)

    def retry_after(self, response: httpx.Response) -> float | None:
        """Retry-After, else Resend's ratelimit-reset (seconds until the window resets)."""
        return base.retry_after_seconds(
            response.headers.get("Retry-After") or response.headers.get("ratelimit-reset")
        )

    def read_error(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result] | None:
        try:
            body = response.json()
            name, message = str(body.get("name", "")), str(body.get("message", ""))
        except (ValueError, AttributeError):
            return None
        if name in QUOTAS:
            raise ProviderError(
                f"resend: {message or name}. The send is paused; run it again when the quota has room."
            )
        if name == "concurrent_idempotent_requests":
            return self._all(
                batch, base.Status.RETRY, f"resend: {message}", self.retry_after(response) or 1.0
            )
        if name == "invalid_idempotent_request":
            # The key was used within 24 hours for a request with other content: that
            # earlier request reached Resend, and may have been delivered.
            return self._all(
                batch, base.Status.UNKNOWN, f"resend already had this batch: {message}"
            )
        return None

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        if response.status_code != 200:
            raise ProviderError(
                f"resend refused the batch ({response.status_code}): {self.error_message(response)}"
            )
        body = response.json()
        failed = {int(e["index"]): str(e.get("message", "")) for e in body.get("errors") or []}
        ids = iter(item["id"] for item in body.get("data") or [])
        results = []
        for index, message in enumerate(batch):
            if index in failed:
                results.append(
                    base.Result(
                        message.send_id, base.Status.REJECTED, reason=f"resend: {failed[index]}"
                    )
                )
            else:
                provider_id = next(ids, None)
                status = base.Status.ACCEPTED if provider_id else base.Status.UNKNOWN
                results.append(
                    base.Result(
                        message.send_id,
                        status,
                        provider_id=provider_id,
                        reason="" if provider_id else "resend answered without an id",
                    )
                )
        return results
