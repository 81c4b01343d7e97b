"""SendGrid provider against a SendGrid double: the exact JSON, each recipient's copy,
429 with X-RateLimit-Reset, errors, configuration; which unknown deliveries it took, from
its Email Activity API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from starlette.responses import JSONResponse, Response

from campaign.errors import ConfigError, ProviderError
from campaign.message import Message
from campaign.providers.base import Status, Unknown
from campaign.providers.sendgrid import SendGridProvider
from tests.providers.samples import batch, message, passed, running
from tests.servers.scripted import DROP, Service
from tests.servers.sendgrid import KEY, sendgrid

ENV = {"SENDGRID_API_KEY": KEY}


async def test_one_request_with_a_personalization_per_recipient() -> None:
    service = sendgrid()
    messages = batch(2)
    async with running(service, SendGridProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    (request,) = service.received
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json()
    assert body["from"] == {
        "email": "newsletter@news.example.org",
        "name": "Colorado Human Trafficking Council",
    }
    assert body["reply_to"] == {"email": "chtc@example.org"}
    assert body["custom_args"] == {"campaign": "may-2024"}
    assert body["headers"] == {
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": "CHTC news <news.example.org>",
        "X-Campaign": "may-2024",
    }
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    first = body["personalizations"][0]
    assert first["to"] == [{"email": "reader0@example.com", "name": "Ann"}]
    assert first["subject"] == "CHTC news, May 2024"
    assert first["custom_args"] == {"send_id": messages[0].send_id}
    assert first["headers"] == {
        "List-Unsubscribe": messages[0].headers["List-Unsubscribe"],
        "X-Campaign-Send-Id": messages[0].send_id,
    }
    assert set(first["substitutions"]) == {
        "{%t0%}",
        "{%t1%}",
        "{%h0%}",
        "{%h1%}",
        "{%h2%}",
        "{%h3%}",
    }
    assert "/unsubscribe/{%h3%}" in body["content"][1]["value"]
    assert {r.status for r in results} == {Status.ACCEPTED}


async def test_each_recipient_receives_exactly_their_own_message() -> None:
    service = sendgrid()
    messages = batch(SendGridProvider.max_batch)
    async with running(service, SendGridProvider, {}, ENV) as provider:
        await provider.send(messages)
    assert len(service.received) == 1
    for m, copy in zip(messages, service.delivered, strict=True):
        assert (copy.to, copy.subject, copy.html, copy.text) == (m.to, m.subject, m.html, m.text)
        assert copy.headers == passed(m)
        assert copy.metadata == {"campaign": m.campaign, "send_id": m.send_id}


async def test_202_is_accepted_with_the_x_message_id() -> None:
    service = sendgrid()
    async with running(service, SendGridProvider, {}, ENV) as provider:
        results = await provider.send(batch(3))
    assert len({r.provider_id for r in results}) == 1 and results[0].provider_id


async def test_429_waits_until_x_ratelimit_reset() -> None:
    reset = int(time.time()) + 30
    service = sendgrid().then(
        JSONResponse(
            {"errors": [{"field": None, "message": "too many requests"}]},
            429,
            headers={
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            },
        )
    )
    async with running(service, SendGridProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert {r.status for r in results} == {Status.THROTTLED}
    assert 25 < results[0].retry_after <= 30  # type: ignore[operator]


async def test_bad_request_stops_with_sendgrids_field_and_message() -> None:
    service = sendgrid().then(
        JSONResponse(
            {
                "errors": [
                    {
                        "field": "from.email",
                        "message": "The from address does not match a verified Sender Identity.",
                        "help": None,
                    }
                ]
            },
            403,
        )
    )
    async with running(service, SendGridProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="from.email: The from address does not match"):
            await provider.send(batch(1))


async def test_payload_too_large_stops_the_send() -> None:
    service = sendgrid().then(Response("Request Entity Too Large", 413))
    async with running(service, SendGridProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="413"):
            await provider.send(batch(1))


async def test_substitutions_beyond_sendgrids_limit_send_each_message_alone() -> None:
    service = sendgrid()
    messages = [message(0, text="a" * 11_000), message(1, text="b" * 11_000)]
    async with running(service, SendGridProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    assert [r.status for r in results] == [Status.ACCEPTED] * 2
    assert [len(r.json()["personalizations"]) for r in service.received] == [1, 1]
    assert sorted(copy.text for copy in service.delivered) == [m.text for m in messages]


def test_configuration() -> None:
    assert SendGridProvider({}, ENV).base_url == "https://api.sendgrid.com"
    assert (
        SendGridProvider({"base_url": "https://api.eu.sendgrid.com"}, ENV).base_url
        == "https://api.eu.sendgrid.com"
    )
    with pytest.raises(ConfigError, match="SENDGRID_API_KEY"):
        SendGridProvider({}, {})
    with pytest.raises(ConfigError, match="unknown"):
        SendGridProvider({"unknown": 1}, ENV)


# which unknown deliveries SendGrid took (its Email Activity API)


def _unknown(messages: Sequence[Message]) -> list[Unknown]:
    since = datetime.now(UTC) - timedelta(minutes=5)
    return [Unknown(m.send_id, since, since + timedelta(seconds=30), m.to_email) for m in messages]


def _queries(service: Service) -> list[dict[str, str]]:
    return [dict(r.query) for r in service.received if r.method == "GET"]


async def test_known_asks_the_activity_feed_by_send_id_and_matches_the_recipient() -> None:
    """Of 120 unknown deliveries SendGrid took the first batch of 100: three queries of at most
    50 send ids (OR), each message matched to its delivery by the address it went to."""
    service = sendgrid()
    messages = batch(120)
    async with running(service, SendGridProvider, {}, ENV) as provider:
        await provider.send(messages[:100])
        assert await provider.known(_unknown(messages)) == {m.send_id for m in messages[:100]}
    queries = _queries(service)
    assert [q["limit"] for q in queries] == ["1000"] * 3
    assert queries[0]["query"] == " OR ".join(
        f"unique_args['send_id']=\"{m.send_id}\"" for m in messages[:50]
    )
    assert [q["query"].count(" OR ") + 1 for q in queries] == [50, 50, 20]


@pytest.mark.parametrize("status", [403, 404])
async def test_without_the_email_activity_add_on_sendgrid_cannot_tell(status: int) -> None:
    service = sendgrid(activity=status == 404)
    messages = batch(2)
    async with running(service, SendGridProvider, {}, ENV) as provider:
        await provider.send(messages)
        if status == 404:
            service.then(JSONResponse({"errors": [{"message": "Not Found"}]}, 404))
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(messages))
    words = str(info.value)
    assert words.startswith(f"sendgrid's Email Activity API answered {status}")
    assert "Email Activity history add-on" in words and "cannot tell" in words
    assert words.endswith("nothing was resent") and KEY not in words


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (JSONResponse({"errors": [{"message": "too many requests"}]}, 429), "6 requests a minute"),
        (
            JSONResponse(
                {"errors": [{"message": "invalid syntax: 'x' is not a known field"}]}, 400
            ),
            "answered 400: request: invalid syntax",
        ),
        (DROP, "did not answer (RemoteProtocolError)"),
        (JSONResponse({"result": []}), "which cannot tell"),
    ],
)
async def test_an_activity_feed_that_cannot_answer_knows_nothing_and_says_so(
    reply: JSONResponse | str, words: str
) -> None:
    service = sendgrid()
    messages = batch(2)
    async with running(service, SendGridProvider, {}, ENV) as provider:
        await provider.send(messages)
        service.then(reply)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(messages))
    assert str(info.value).startswith("sendgrid's Email Activity API") and words in str(info.value)
    assert str(info.value).endswith("nothing was resent") and KEY not in str(info.value)


async def test_a_seventh_query_within_a_minute_is_refused_as_documented() -> None:
    """The double holds SendGrid to its 6 requests a minute: asked about more than a minute's
    worth, the provider stops with SendGrid's 429 rather than guess."""
    service = sendgrid()
    messages = batch(2)
    async with running(service, SendGridProvider, {}, ENV) as provider:
        await provider.send(messages)
        many = _unknown(messages) * 175  # 350 deliveries: seven queries
        with pytest.raises(ProviderError, match="answered 429.*6 requests a minute"):
            await provider.known(many)
    assert len(_queries(service)) == 7
