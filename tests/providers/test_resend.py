"""Resend provider against a Resend double: the batch body, the Idempotency-Key that
makes a retried batch harmless, partial failure by index, pacing at 2 requests per
second, quotas, configuration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.message import Message
from campaign.providers import resend as resend_provider
from campaign.providers.base import CLOCK_MARGIN, Status, Unknown
from campaign.providers.resend import ResendProvider, idempotency_key
from tests.providers.samples import batch, message, passed, running
from tests.servers.resend import KEY, resend
from tests.servers.scripted import DROP, Service

ENV = {"RESEND_API_KEY": KEY}


async def test_batch_body_and_headers() -> None:
    service = resend()
    messages = batch(2)
    async with running(service, ResendProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    (request,) = service.received
    assert (request.method, request.path) == ("POST", "/emails/batch")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"] == idempotency_key(messages)
    assert request.headers["x-batch-validation"] == "permissive"
    first = request.json()[0]
    m = messages[0]
    assert first == {
        "from": m.from_,
        "to": [m.to],
        "subject": m.subject,
        "html": m.html,
        "text": m.text,
        "headers": passed(m),
        "reply_to": ["chtc@example.org"],
        "tags": [
            {"name": "campaign", "value": "may-2024"},
            {"name": "send_id", "value": m.send_id},
        ],
    }
    assert [r.status for r in results] == [Status.ACCEPTED] * 2 and results[
        0
    ].provider_id != results[1].provider_id


async def test_idempotency_key_depends_only_on_the_batchs_send_ids() -> None:
    assert idempotency_key(batch(3)) == idempotency_key(batch(3, subject="other"))
    assert idempotency_key(batch(3)) != idempotency_key(batch(3, start=1))
    assert len(idempotency_key(batch(100))) <= 256


async def test_a_batch_sent_again_after_a_dropped_answer_goes_out_once() -> None:
    service = resend().then(DROP)
    messages = batch(3)
    async with running(service, ResendProvider, {"requests_per_second": 50}, ENV) as provider:
        first = await provider.send(messages)
        second = await provider.send(messages)
    assert {r.status for r in first} == {Status.UNKNOWN}
    assert {r.status for r in second} == {Status.ACCEPTED}
    assert len(service.delivered) == 3  # the retry was answered from Resend's idempotency store


async def test_same_key_with_another_body_is_unknown_not_resent() -> None:
    service = resend()
    async with running(service, ResendProvider, {"requests_per_second": 50}, ENV) as provider:
        await provider.send(batch(2))
        results = await provider.send(batch(2, subject="Rebuilt since"))
    assert {r.status for r in results} == {Status.UNKNOWN}
    assert "already had this batch" in results[0].reason
    assert len(service.delivered) == 2


async def test_permissive_validation_rejects_only_the_invalid_email() -> None:
    service = resend()
    messages = [message(0), message(1, to="not-an-address"), message(2)]
    async with running(service, ResendProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    assert [r.status for r in results] == [Status.ACCEPTED, Status.REJECTED, Status.ACCEPTED]
    assert "email@example.com" in results[1].reason
    assert [c.to for c in service.delivered] == [messages[0].to, messages[2].to]


async def test_requests_are_paced_to_two_per_second() -> None:
    service = resend(requests_per_second=2)
    async with running(service, ResendProvider, {}, ENV) as provider:
        started = time.monotonic()
        results = await asyncio.gather(*(provider.send(batch(1, start=i)) for i in range(5)))
        elapsed = time.monotonic() - started
    assert all(r[0].status == Status.ACCEPTED for r in results)
    assert service.state.get("rate_limited", 0) == 0
    assert elapsed >= 2.0  # five requests at two per second


async def test_429_is_retried_after_retry_after() -> None:
    service = resend().then(
        JSONResponse(
            {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests."},
            429,
            headers={"retry-after": "3", "ratelimit-reset": "3"},
        )
    )
    async with running(service, ResendProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert {(r.status, r.retry_after) for r in results} == {(Status.THROTTLED, 3.0)}


@pytest.mark.parametrize("name", ["daily_quota_exceeded", "monthly_quota_exceeded"])
async def test_quota_reached_pauses_the_send(name: str) -> None:
    service = resend().then(
        JSONResponse(
            {"statusCode": 429, "name": name, "message": "You have reached your quota."}, 429
        )
    )
    async with running(service, ResendProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="paused"):
            await provider.send(batch(2))


async def test_concurrent_idempotent_request_is_retried() -> None:
    service = resend().then(
        JSONResponse(
            {
                "statusCode": 409,
                "name": "concurrent_idempotent_requests",
                "message": "Same key in progress.",
            },
            409,
        )
    )
    async with running(service, ResendProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert {r.status for r in results} == {Status.RETRY} and results[0].retry_after == 1.0


async def test_validation_error_of_the_whole_batch_stops_the_send() -> None:
    service = resend().then(
        JSONResponse(
            {"statusCode": 422, "name": "invalid_from_address", "message": "Invalid `from` field."},
            422,
        )
    )
    async with running(service, ResendProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="Invalid `from` field"):
            await provider.send(batch(2))


def test_configuration() -> None:
    assert ResendProvider({}, ENV).base_url == "https://api.resend.com"
    with pytest.raises(ConfigError, match="RESEND_API_KEY"):
        ResendProvider({}, {})
    with pytest.raises(ConfigError, match="requests_per_second"):
        ResendProvider({"requests_per_second": 0}, ENV)


async def test_429_without_retry_after_waits_for_ratelimit_reset() -> None:
    service = resend().then(
        JSONResponse(
            {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests."},
            429,
            headers={"ratelimit-reset": "4"},
        )
    )
    async with running(service, ResendProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert {(r.status, r.retry_after) for r in results} == {(Status.THROTTLED, 4.0)}


# which unknown deliveries Resend took (its list of sent emails)

FAST = {"requests_per_second": 1000}


def _unknown(messages: Sequence[Message], since: datetime, until: datetime) -> list[Unknown]:
    return [Unknown(m.send_id, since, until, m.to_email) for m in messages]


def _reads(service: Service) -> tuple[list[dict[str, str]], list[str]]:
    """The query of each page of the list asked for, and the ids of the emails retrieved."""
    pages = [dict(r.query) for r in service.received if r.path == "/emails"]
    emails = [r.path.removeprefix("/emails/") for r in service.received if r.method == "GET"]
    return pages, [e for e in emails if e != "/emails"]


async def _three_hours(service: Service, provider: ResendProvider) -> list[Message]:
    """300 emails taken two hours ago, an hour ago and now, 100 each: the middle ones are
    returned, with the window they were sent in."""
    messages = batch(300)
    for hours_ago, start in ((2, 0), (1, 100), (0, 200)):
        await provider.send(messages[start : start + 100])
        for copy in service.delivered[start:]:
            copy.timestamp -= hours_ago * 3600
    return messages[100:200]


def _window(service: Service, start: int, end: int) -> tuple[datetime, datetime]:
    times = [datetime.fromtimestamp(c.timestamp, UTC) for c in service.delivered[start:end]]
    return min(times), max(times)


async def test_known_lists_back_to_the_window_and_retrieves_only_the_emails_in_it() -> None:
    """The newest 100 are listed and passed over; the window's 100 are each retrieved for
    their send_id tag; the first email older than the window ends the search."""
    service = resend(requests_per_second=None)
    async with running(service, ResendProvider, FAST, ENV) as provider:
        middle = await _three_hours(service, provider)
        since, until = _window(service, 100, 200)
        lost = message(300)  # its request never reached Resend
        asked = _unknown([middle[5], middle[50], lost], since, until)
        assert await provider.known(asked) == {middle[5].send_id, middle[50].send_id}
    pages, retrieved = _reads(service)
    newest = service.delivered[200:]
    assert pages == [
        {"limit": "100"},
        {"limit": "100", "after": newest[0].id},  # type: ignore[attr-defined]
        {"limit": "100", "after": service.delivered[100].id},  # type: ignore[attr-defined]
    ]
    assert sorted(retrieved) == sorted(c.id for c in service.delivered[100:200])  # type: ignore[attr-defined]


async def test_known_stops_reading_once_every_delivery_is_found() -> None:
    service = resend(requests_per_second=None)
    async with running(service, ResendProvider, FAST, ENV) as provider:
        middle = await _three_hours(service, provider)
        since, until = _window(service, 100, 200)
        asked = _unknown(middle[-2:], since, until)
        assert await provider.known(asked) == {m.send_id for m in middle[-2:]}
    pages, retrieved = _reads(service)
    assert len(pages) == 2 and len(retrieved) == 2


async def test_an_account_too_busy_since_the_window_knows_nothing_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resend_provider, "LIST_MAX_PAGES", 1)
    service = resend(requests_per_second=None)
    async with running(service, ResendProvider, FAST, ENV) as provider:
        middle = await _three_hours(service, provider)
        since, until = _window(service, 100, 200)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(middle[:1], since, until))
    assert str(info.value) == (
        "resend sent more than 100 emails since the unknown deliveries; nothing was resent"
    )


async def test_a_list_that_ends_before_an_old_window_may_have_dropped_it() -> None:
    """Resend keeps emails a day or more: two days on, a list that ends within the window
    cannot say that a delivery it lacks was never taken."""
    service = resend(requests_per_second=None)
    messages = batch(2)
    async with running(service, ResendProvider, FAST, ENV) as provider:
        await provider.send(messages[:1])
        service.delivered[0].timestamp -= 2 * 86400
        since, until = _window(service, 0, 1)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(messages, since, until))
    assert str(info.value) == (
        f"resend's email list ends before {since - CLOCK_MARGIN:%Y-%m-%d %H:%M} UTC, when the "
        "unknown deliveries were sent: it may have dropped them; nothing was resent"
    )


async def test_reads_share_the_pace_of_sends() -> None:
    service = resend(requests_per_second=2)
    messages = batch(3)
    async with running(service, ResendProvider, {}, ENV) as provider:
        since = datetime.now(UTC)
        await provider.send(messages[:2])
        assert await provider.known(_unknown(messages, since, datetime.now(UTC))) == {
            m.send_id for m in messages[:2]
        }
    assert service.state.get("rate_limited", 0) == 0 and len(service.received) == 4


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (JSONResponse({"name": "application_error", "message": "Boom"}, 500), "answered 500: Boom"),
        (JSONResponse({"message": "Too many requests"}, 429), "answered 429: Too many requests"),
        (DROP, "did not answer (RemoteProtocolError)"),
        (JSONResponse({"object": "list", "data": "x"}), "unreadable page"),
        (JSONResponse({"object": "list", "has_more": True, "data": []}), "unreadable page"),
    ],
)
async def test_an_email_list_that_cannot_answer_knows_nothing_and_says_so(
    reply: JSONResponse | str, words: str
) -> None:
    service = resend(requests_per_second=None)
    messages = batch(2)
    async with running(service, ResendProvider, FAST, ENV) as provider:
        since = datetime.now(UTC)
        await provider.send(messages)
        service.then(reply)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(messages, since, datetime.now(UTC)))
    assert str(info.value).startswith("resend's email list") and words in str(info.value)
    assert str(info.value).endswith("nothing was resent") and KEY not in str(info.value)


async def test_an_email_that_cannot_be_retrieved_knows_nothing() -> None:
    service = resend(requests_per_second=None)
    messages = batch(2)
    async with running(service, ResendProvider, FAST, ENV) as provider:
        since = datetime.now(UTC)
        await provider.send(messages)
        service.then(
            JSONResponse(
                {
                    "object": "list",
                    "has_more": False,
                    "data": [{"id": "gone", "created_at": datetime.now(UTC).isoformat()}],
                }
            )
        )
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(messages, since, datetime.now(UTC)))
    assert str(info.value) == "resend's email answered 404: Email not found; nothing was resent"
