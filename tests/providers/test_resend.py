"""Resend provider against a Resend double: the batch body, the Idempotency-Key that
makes a retried batch harmless, partial failure by index, pacing at 2 requests per
second, quotas, configuration."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.providers.base import Status
from campaign.providers.resend import ResendProvider, idempotency_key
from tests.providers.samples import batch, message, passed, running
from tests.servers.resend import KEY, resend
from tests.servers.scripted import DROP

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
