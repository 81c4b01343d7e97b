"""Brevo provider against a Brevo double: messageVersions with each recipient's own
content and headers, message ids per version, 429, errors, configuration."""

from __future__ import annotations

import json

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.providers.base import Status
from campaign.providers.batching import UnsupportedFeature
from campaign.providers.brevo import BrevoProvider
from tests.providers.samples import batch, message, passed, running
from tests.servers.brevo import KEY, brevo

ENV = {"BREVO_API_KEY": KEY}


async def test_one_request_with_a_version_per_recipient() -> None:
    service = brevo()
    messages = batch(2)
    async with running(service, BrevoProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    (request,) = service.received
    assert (request.method, request.path) == ("POST", "/v3/smtp/email")
    assert request.headers["api-key"] == KEY and request.headers["accept"] == "application/json"
    body = request.json()
    assert body["sender"] == {
        "email": "newsletter@news.example.org",
        "name": "Colorado Human Trafficking Council",
    }
    assert body["replyTo"] == {"email": "chtc@example.org"}
    assert (body["subject"], body["htmlContent"], body["textContent"]) == (
        messages[0].subject,
        messages[0].html,
        messages[0].text,
    )
    assert body["tags"] == ["may-2024"]
    assert body["headers"] == {
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": "CHTC news <news.example.org>",
        "X-Campaign": "may-2024",
    }
    first, second = body["messageVersions"]
    assert first == {
        "to": [{"email": "reader0@example.com", "name": "Ann"}],
        "headers": {
            "List-Unsubscribe": messages[0].headers["List-Unsubscribe"],
            "X-Campaign-Send-Id": messages[0].send_id,
            "X-Mailin-custom": json.dumps({"send_id": messages[0].send_id}),
        },
    }
    assert second["htmlContent"] == messages[1].html and second["textContent"] == messages[1].text
    assert "subject" not in second
    assert [r.status for r in results] == [Status.ACCEPTED] * 2
    assert results[0].provider_id != results[1].provider_id


async def test_each_recipient_receives_exactly_their_own_message() -> None:
    service = brevo()
    messages = batch(200)
    async with running(service, BrevoProvider, {}, ENV) as provider:
        await provider.send(messages)
    for m, copy in zip(messages, service.delivered, strict=True):
        assert (copy.to, copy.subject, copy.html, copy.text) == (m.to, m.subject, m.html, m.text)
        assert copy.headers == {
            "Reply-To": m.reply_to,
            **passed(m),
            "X-Mailin-custom": json.dumps({"send_id": m.send_id}),
        }


async def test_429_is_retried_after_brevos_reset_header() -> None:
    service = brevo().then(
        JSONResponse(
            {"code": "too_many_requests", "message": "Too many requests"},
            429,
            headers={
                "x-sib-ratelimit-limit": "100",
                "x-sib-ratelimit-remaining": "0",
                "x-sib-ratelimit-reset": "12",
            },
        )
    )
    async with running(service, BrevoProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert {(r.status, r.retry_after) for r in results} == {(Status.THROTTLED, 12.0)}


async def test_invalid_parameter_stops_with_brevos_message() -> None:
    async with running(brevo(), BrevoProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="email is not valid"):
            await provider.send([message(0), message(1, to="broken")])


async def test_non_ascii_header_is_unsupported() -> None:
    m = message(0, headers={**message(0).headers, "List-Id": "Zoë's list <news.example.org>"})
    async with running(brevo(), BrevoProvider, {}, ENV) as provider:
        with pytest.raises(UnsupportedFeature, match="non-ASCII characters in the List-Id header"):
            await provider.send([m])


def test_configuration() -> None:
    assert BrevoProvider({}, ENV).base_url == "https://api.brevo.com"
    with pytest.raises(ConfigError, match="BREVO_API_KEY"):
        BrevoProvider({}, {})
