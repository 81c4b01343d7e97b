"""Mailgun provider against a Mailgun double on loopback: the exact request, what each
recipient receives, every reply mapped, configuration."""

from __future__ import annotations

import base64
import email.utils
import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.message import Message
from campaign.providers import mailgun as mailgun_provider
from campaign.providers.base import CLOCK_MARGIN, Status, Unknown, windows
from campaign.providers.mailgun import EVENTS_SETTLE, MailgunProvider
from tests.providers.samples import batch, message, passed, running
from tests.servers.mailgun import DOMAIN, KEY, mailgun
from tests.servers.scripted import DROP, Received, Service

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


# which unknown deliveries Mailgun took (its Events API)


def _unknown(messages: Sequence[Message], since: datetime, until: datetime) -> list[Unknown]:
    return [Unknown(m.send_id, since, until, m.to_email) for m in messages]


def _event_pages(received: list[Received]) -> list[dict[str, str]]:
    """The query of each page of events asked for."""
    return [dict(r.query) for r in received if r.method == "GET"]


def _an_hour_ago(service: Service) -> tuple[datetime, datetime]:
    """As if the service had taken what it holds an hour ago, when the lag of its event log no
    longer hides anything: the window those requests were made in."""
    for copy in service.delivered:
        copy.timestamp -= 3600
    times = [datetime.fromtimestamp(c.timestamp, UTC) for c in service.delivered]
    return min(times), max(times)


async def test_known_reads_the_windows_accepted_events_page_by_page() -> None:
    """700 accepted: the three pages of 300 and the empty one after; only those taken are known.
    The next pages are asked of the configured host, never of the one in Mailgun's URLs."""
    service = mailgun()
    messages = batch(700)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        await provider.send(messages)
        since, until = _an_hour_ago(service)
        lost = message(700)  # its request never reached Mailgun
        asked = _unknown([messages[650], messages[699], lost], since, until)
        assert await provider.known(asked) == {messages[650].send_id, messages[699].send_id}
    first, *following = _event_pages(service.received)
    assert first == {
        "event": "accepted",
        "begin": str(math.floor((since - CLOCK_MARGIN).timestamp())),
        "end": str(math.ceil((until + CLOCK_MARGIN).timestamp())),
        "ascending": "yes",
        "limit": "300",
    }
    assert following == [{}, {}, {}]  # paging.next URLs carry the query themselves
    assert [r.path.startswith(f"/v3/{DOMAIN}/events/") for r in service.received[2:]] == [True] * 3


async def test_known_stops_reading_once_every_delivery_is_found() -> None:
    service = mailgun()
    messages = batch(700)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        since = datetime.now(UTC)
        await provider.send(messages)
        asked = _unknown(messages[:2], since, datetime.now(UTC))
        assert await provider.known(asked) == {m.send_id for m in messages[:2]}
    assert len(_event_pages(service.received)) == 1


async def test_a_window_too_busy_to_read_knows_nothing_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mailgun_provider, "EVENTS_MAX_PAGES", 2)
    service = mailgun()
    messages = batch(700)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        await provider.send(messages)
        since, until = _an_hour_ago(service)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown([message(700)], since, until))
    assert str(info.value) == (
        "mailgun's event log holds more than 600 events in the minutes the unknown deliveries "
        "were sent; nothing was resent"
    )
    assert len(_event_pages(service.received)) == 2


async def test_a_delivery_missing_from_a_recent_window_is_not_resent_on_its_word() -> None:
    """Mailgun's events can take a while to show: a request of minutes ago not found there
    may still have been taken. Nothing is resent; the message says when to ask again."""
    service = mailgun()
    messages = batch(2)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        since = datetime.now(UTC)
        await provider.send(messages[:1])
        until = datetime.now(UTC)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(messages, since, until))
    after = until + CLOCK_MARGIN + EVENTS_SETTLE
    assert str(info.value) == (
        "1 unknown deliveries are not in mailgun's event log, which may show events up to "
        f"30 minutes late; nothing was resent: run again after {after:%H:%M} UTC"
    )


def test_windows_merge_overlapping_requests_and_keep_distant_ones_apart() -> None:
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    second = timedelta(seconds=1)
    unknown = [
        Unknown("c", at + 2 * CLOCK_MARGIN, at + 2 * CLOCK_MARGIN + second, "c@example.com"),
        Unknown("a", at, at + second, "a@example.com"),
        Unknown("b", at + second, at + 30 * second, "b@example.com"),
        Unknown("d", at + timedelta(hours=3), at + timedelta(hours=3, seconds=5), "d@example.com"),
    ]
    assert list(windows(unknown)) == [
        (at - CLOCK_MARGIN, at + 3 * CLOCK_MARGIN + second, {"a", "b", "c"}),
        (
            at + timedelta(hours=3) - CLOCK_MARGIN,
            at + timedelta(hours=3, seconds=5) + CLOCK_MARGIN,
            {"d"},
        ),
    ]


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (JSONResponse({"message": "Internal error"}, 500), "answered 500: Internal error"),
        (JSONResponse({"message": "Too many requests"}, 429), "answered 429: Too many requests"),
        (DROP, "did not answer (RemoteProtocolError)"),
        (JSONResponse({"items": []}), "unreadable page"),
    ],
)
async def test_an_event_log_that_cannot_answer_knows_nothing_and_says_so(
    reply: JSONResponse | str, words: str
) -> None:
    service = mailgun()
    messages = batch(2)
    async with running(service, MailgunProvider, OPTIONS, ENV) as provider:
        since = datetime.now(UTC)
        await provider.send(messages)
        service.then(reply)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown(messages, since, datetime.now(UTC)))
    assert str(info.value).startswith("mailgun's event log") and words in str(info.value)
    assert str(info.value).endswith("nothing was resent") and KEY not in str(info.value)


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
