"""Mailgun provider against a Mailgun double on loopback: the exact request, what each
recipient receives, every reply mapped, configuration."""

from __future__ import annotations

import base64
import email.utils
import json
import time

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.providers.base import Status
from campaign.providers.mailgun import MailgunProvider
from tests.providers.samples import batch, message, passed, running
from tests.servers.mailgun import DOMAIN, KEY, mailgun

ENV = {"MAILGUN_API_KEY": KEY}
OPTIONS = {"domain": DOMAIN}


# standard


async def test_batch_is_one_multipart_request_with_recipient_variables() -> None:
    service = mailgun()
    messages = batch(3)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        results = await provider.send(messages)
    (request,) = service.received
    assert request.method == "POST" and request.path == f"/v3/{DOMAIN}/messages"
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    )
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert request.fields("from") == [messages[0].from_]
    assert request.fields("to") == [m.to for m in messages]
    assert request.field("h:Reply-To") == "chtc@example.org"
    assert request.field("h:List-Unsubscribe") == "%recipient.h:List-Unsubscribe%"
    assert request.field("h:List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert request.field("h:List-Id") == "CHTC news <news.example.org>"
    assert request.field("v:send_id") == "%recipient.send_id%"
    assert request.field("v:campaign") == "may-2024"
    assert not [k for k, _ in request.form if k in ("h:Date", "h:Message-ID")]
    variables = json.loads(request.field("recipient-variables"))
    assert list(variables) == [m.to_email for m in messages]
    assert variables["reader0@example.com"]["send_id"] == messages[0].send_id
    # one shared body: the links and names are merge tags, the rest is sent once
    assert request.field("html").count("%recipient.h") == 4
    assert "unsubscribe/%recipient.h" in request.field("html")
    assert [r.status for r in results] == [Status.ACCEPTED] * 3


async def test_each_recipient_receives_exactly_their_own_message() -> None:
    service = mailgun()
    messages = batch(MailgunProvider.max_batch)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        await provider.send(messages)
    assert len(service.received) == 1
    for m, copy in zip(messages, service.delivered, strict=True):
        assert (copy.to, copy.subject, copy.html, copy.text) == (m.to, m.subject, m.html, m.text)
        assert copy.headers == {"Reply-To": m.reply_to, **passed(m)}
        assert copy.metadata == {"send_id": m.send_id, "campaign": m.campaign}


async def test_one_recipient_goes_as_it_is_without_recipient_variables() -> None:
    service = mailgun()
    m = message(0, to_name="%recipient.x% Ann")
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        await provider.send([m])
    request = service.received[0]
    assert request.fields("recipient-variables") == []
    assert request.field("v:send_id") == m.send_id
    (copy,) = service.delivered
    assert (copy.to, copy.subject, copy.html, copy.text) == (m.to, m.subject, m.html, m.text)
    assert copy.metadata == {"send_id": m.send_id, "campaign": m.campaign}


# recipient status


async def test_accepted_with_mailgun_message_id() -> None:
    service = mailgun()
    messages = batch(2)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        results = await provider.send(messages)
    assert {r.provider_id for r in results} == {results[0].provider_id}
    assert results[0].provider_id.endswith(f"@{DOMAIN}>")  # type: ignore[union-attr]
    assert [r.send_id for r in results] == [m.send_id for m in messages]


async def test_429_is_retried_after_retry_after() -> None:
    service = mailgun().then(
        JSONResponse({"message": "Too many requests"}, 429, headers={"Retry-After": "7"})
    )
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        results = await provider.send(batch(2))
    assert {(r.status, r.retry_after) for r in results} == {(Status.THROTTLED, 7.0)}
    assert service.delivered == []


# errors


async def test_wrong_key_stops_the_send_without_showing_the_key() -> None:
    service = mailgun()
    async with running(
        service, MailgunProvider, OPTIONS, {"MAILGUN_API_KEY": "key-wrong"}
    ) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.send(batch(1))
    assert "401" in str(info.value) and "key-wrong" not in str(info.value)


async def test_unknown_domain_names_the_region_setting() -> None:
    service = mailgun(domain="other.example.org")
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        with pytest.raises(ProviderError, match="region"):
            await provider.send(batch(1))


async def test_bad_request_stops_with_mailguns_words() -> None:
    service = mailgun().then(
        JSONResponse({"message": "'from' parameter is not a valid address"}, 400)
    )
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        with pytest.raises(ProviderError, match="not a valid address"):
            await provider.send(batch(1))


async def test_same_address_twice_in_a_batch_goes_one_request_each() -> None:
    service = mailgun()
    messages = [message(0), message(1, to="reader0@example.com")]
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        results = await provider.send(messages)
    assert [r.status for r in results] == [Status.ACCEPTED] * 2
    assert sorted(copy.text for copy in service.delivered) == sorted(m.text for m in messages)


async def test_mailgun_syntax_in_a_message_sends_it_alone_as_it_is() -> None:
    service = mailgun()
    messages = [message(0, text="use %recipient.name% here"), message(1), message(2)]
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        results = await provider.send(messages)
    assert [r.status for r in results] == [Status.ACCEPTED] * 3
    assert [len(r.fields("to")) for r in service.received] == [2, 1]
    copies = {copy.to: copy for copy in service.delivered}
    for m in messages:
        assert (copies[m.to].html, copies[m.to].text) == (m.html, m.text)


async def test_429_waits_until_the_date_in_mailguns_words() -> None:
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    service = mailgun().then(
        JSONResponse({"message": f"Too many requests, try again after {when}"}, 429)
    )
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        results = await provider.send(batch(2))
    assert {r.status for r in results} == {Status.THROTTLED}
    assert all(55 < (r.retry_after or 0) <= 60 for r in results)


async def test_403_is_mailguns_refusal_in_its_words_not_bad_credentials() -> None:
    words = "Domain mg.example.org is not allowed to send large batches yet"
    service = mailgun().then(JSONResponse({"message": words}, 403))
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.send(batch(2))
    assert words in str(info.value) and "credentials" not in str(info.value)


# configuration


def test_region_picks_the_api_host() -> None:
    assert MailgunProvider(OPTIONS, ENV).base_url == "https://api.mailgun.net"
    assert (
        MailgunProvider({**OPTIONS, "region": "eu"}, ENV).base_url == "https://api.eu.mailgun.net"
    )
    assert (
        MailgunProvider({**OPTIONS, "base_url": "http://127.0.0.1:9/"}, ENV).base_url
        == "http://127.0.0.1:9"
    )


def test_configuration_errors_name_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="MAILGUN_API_KEY"):
        MailgunProvider(OPTIONS, {})
    with pytest.raises(ConfigError, match="domain"):
        MailgunProvider({}, ENV)
    with pytest.raises(ConfigError, match="region"):
        MailgunProvider({**OPTIONS, "region": "asia"}, ENV)
