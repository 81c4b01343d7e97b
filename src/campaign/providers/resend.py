"""Resend: POST /emails/batch, up to 100 emails per request, each with its own body.

Every batch carries an Idempotency-Key derived from its send ids, so a batch sent
again (after a timeout, say) within Resend's 24 hours is not delivered twice.
Permissive batch validation lets Resend accept the valid emails of a batch and
report the others by index. Resend allows 2 requests per second by default; the
provider paces its own requests (`requests_per_second`) and honours Retry-After.

`--resend-unknown` regroups the unknown deliveries into new batches, with new keys, so
Resend cannot recognise them: `known` asks it first. Its list of sent emails (GET /emails,
newest first, at most 100 a page, cursor `after`) has no filter and leaves the tags out;
retrieving one email (GET /emails/{id}) gives them, our `send_id` among them. So the list
is read back to the start of the earliest window the requests were made in, and each email
created within a window is retrieved: the cost is the account's traffic since then, at the
same pace as sending. Resend documents no delay before a sent email is listed. Its plans
keep emails a day or more: a list that ends before reaching back to a window older than
that cannot tell, so nothing is resent.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import passed_headers

QUOTAS = {"daily_quota_exceeded", "monthly_quota_exceeded"}
LIST_PAGE = 100
"""Emails per page of GET /emails: its `limit` maximum."""
LIST_MAX_PAGES = 10
"""Pages read back to the earliest window (1,000 emails, then as many reads at most: some
ten minutes at 2 requests a second) before giving up: beyond, the account is too busy."""
RETENTION = timedelta(days=1)
"""The shortest time Resend keeps sent emails (its free plan's data retention; its API reference
says none): a list that ends without reaching back to a window is trusted only for a younger one."""


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

    async def pace(self) -> None:
        """Start requests, sends and reads of the email list alike, at most
        `requests_per_second`, however many are in flight."""
        async with self._pace_lock:
            now = time.monotonic()
            if self._next_start > now:
                await asyncio.sleep(self._next_start - now)
            self._next_start = max(now, self._next_start) + self._interval

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

    async def known(self, unknown: Sequence[base.Unknown]) -> set[str]:
        """The emails listed back to the earliest window; those created within a window are
        retrieved and matched by their `send_id` tag, until every delivery is found."""
        if not unknown:
            return set()
        spans = list(base.windows(unknown))
        wanted = {_tag(u.send_id): u.send_id for u in unknown}
        oldest = spans[0][0]
        found: set[str] = set()
        params: dict[str, Any] = {"limit": LIST_PAGE}
        for _ in range(LIST_MAX_PAGES):
            emails, more = _page(await self.lookup("email list", "/emails", params))
            for email_id, created in emails:
                if created < oldest:
                    return found
                if any(begin <= created <= end and not ids <= found for begin, end, ids in spans):
                    send_id = wanted.get(
                        _send_tag(await self.lookup("email", f"/emails/{email_id}"))
                    )
                    if send_id is not None:
                        found.add(send_id)
                        if len(found) == len(wanted):
                            return found
            if not more:
                if datetime.now(UTC) - oldest > RETENTION:
                    raise ProviderError(
                        f"resend's email list ends before {oldest:%Y-%m-%d %H:%M} UTC, when the "
                        "unknown deliveries were sent: it may have dropped them; nothing was resent"
                    )
                return found
            params = {"limit": LIST_PAGE, "after": emails[-1][0]}
        raise ProviderError(
            f"resend sent more than {LIST_MAX_PAGES * LIST_PAGE} emails since the unknown "
            "deliveries; nothing was resent"
        )


def _page(page: Any) -> tuple[list[tuple[str, datetime]], bool]:
    """A page of GET /emails: each email's id and creation time, and whether more follow."""
    try:
        emails = [(str(e["id"]), _time(e["created_at"])) for e in page["data"]]
        more = page["has_more"]
        if not isinstance(more, bool) or (more and not emails):
            raise ValueError  # no cursor to go on from
        return emails, more
    except (KeyError, TypeError, ValueError):
        raise ProviderError(
            f"resend's email list answered an unreadable page: {str(page)[:200]}; nothing was resent"
        ) from None


def _time(value: str) -> datetime:
    """Resend's created_at ("2023-04-03 22:13:42.674981+00" in its OpenAPI, or ISO 8601)."""
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _send_tag(email: Any) -> str:
    """The `send_id` tag of a retrieved email ("" if none)."""
    tags = email.get("tags") if isinstance(email, dict) else None
    for tag in tags if isinstance(tags, list) else []:
        if isinstance(tag, dict) and tag.get("name") == "send_id":
            return str(tag.get("value"))
    return ""
