"""Mandrill provider against a Mandrill double: one recipient's own message per call
(Mandrill cannot merge into headers), key in the body, statuses mapped, errors; which
unknown deliveries it took, from its message search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.providers.base import Status, Unknown
from campaign.providers.mandrill import MandrillProvider
from tests.providers.samples import message, passed, running
from tests.servers.mandrill import KEY, mandrill
from tests.servers.scripted import DROP, Service

ENV = {"MANDRILL_API_KEY": KEY}
API = "/api/1.0"


async def test_message_body() -> None:
    service = mandrill()
    m = message(1)
    async with running(service, MandrillProvider, {"subaccount": "news"}, ENV, API) as provider:
        (result,) = await provider.send([m])
    (request,) = service.received
    assert (request.method, request.path) == ("POST", "/api/1.0/messages/send.json")
    assert "authorization" not in request.headers
    assert request.json() == {
        "key": KEY,
        "message": {
            "html": m.html,
            "text": m.text,
            "subject": m.subject,
            "from_email": "newsletter@news.example.org",
            "from_name": "Colorado Human Trafficking Council",
            "to": [{"email": "reader1@example.com", "name": "Bob O'Neil", "type": "to"}],
            "headers": {**passed(m), "Reply-To": "chtc@example.org"},
            "preserve_recipients": False,
            "merge": False,
            "auto_text": False,
            "auto_html": False,
            "tags": ["may-2024"],
            "metadata": {"send_id": m.send_id, "campaign": "may-2024"},
            "subaccount": "news",
        },
    }
    assert result.status == Status.ACCEPTED and result.provider_id
    assert service.delivered[0].html == m.html


@pytest.mark.parametrize("queued", [False, True])
async def test_sent_and_queued_are_accepted(queued: bool) -> None:
    async with running(mandrill(queued=queued), MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.ACCEPTED


async def test_rejected_carries_the_reject_reason() -> None:
    service = mandrill(rejects={"reader0@example.com": "hard-bounce"})
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.REJECTED and result.reason == "mandrill rejected: hard-bounce"


async def test_invalid_address_is_rejected() -> None:
    async with running(mandrill(), MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0, to="nobody")])
    assert result.status == Status.REJECTED and "invalid" in result.reason


async def test_missing_status_is_unknown() -> None:
    service = mandrill().then(JSONResponse([]))
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.UNKNOWN


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("Invalid_Key", "Invalid API key"),
        ("PaymentRequired", "PaymentRequired"),
        ("ValidationError", "ValidationError"),
        ("Unknown_Subaccount", "Unknown_Subaccount"),
    ],
)
async def test_errors_stop_the_send(name: str, match: str) -> None:
    service = mandrill().then(
        JSONResponse(
            {
                "status": "error",
                "code": -1,
                "name": name,
                "message": "Invalid API key" if name == "Invalid_Key" else "x",
            },
            500,
        )
    )
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        with pytest.raises(ProviderError, match=match):
            await provider.send([message(0)])


def test_configuration() -> None:
    assert MandrillProvider({}, ENV).base_url == "https://mandrillapp.com/api/1.0"
    assert MandrillProvider.max_batch == 1
    with pytest.raises(ConfigError, match="MANDRILL_API_KEY"):
        MandrillProvider({}, {})


# which unknown deliveries Mandrill took (its message search)


def _unknown(send_ids: list[str], since: datetime | None = None) -> list[Unknown]:
    since = since or datetime.now(UTC) - timedelta(minutes=5)
    return [
        Unknown(send_id, since, since + timedelta(seconds=30), f"{send_id}@example.com")
        for send_id in send_ids
    ]


def _calls(service: Service, path: str) -> list[dict[str, Any]]:
    return [r.json() for r in service.received if r.path == f"{API}/{path}"]


async def test_known_asks_the_search_for_the_send_ids_in_metadata() -> None:
    """Of four unknown deliveries Mandrill sent two, rejected one (not taken: sent again, it
    gets its answer) and never saw the last: one search, terms joined by OR, answers two."""
    service = mandrill(rejects={"reader2@example.com": "hard-bounce"})
    messages = [message(i) for i in range(4)]
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        for m in messages:
            await provider.send([m])
        lost = messages[3].send_id
        service.state["messages"] = [
            m for m in service.state["messages"] if m["metadata"]["send_id"] != lost
        ]
        asked = _unknown([m.send_id for m in messages])
        assert await provider.known(asked) == {messages[0].send_id, messages[1].send_id}
    (search,) = _calls(service, "messages/search.json")
    day = asked[0].since.date()
    assert search == {
        "key": KEY,
        "query": " OR ".join(f'"{m.send_id}"' for m in messages),
        "limit": 1000,
        "date_from": (day - timedelta(days=1)).isoformat(),
        "date_to": (asked[0].until.date() + timedelta(days=1)).isoformat(),
    }
    assert _calls(service, "metadata/list.json") == [{"key": KEY}]


async def test_known_asks_a_hundred_send_ids_a_search() -> None:
    service = mandrill()
    sent = message(0)
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        await provider.send([sent])
        never = [f"{i:032x}" for i in range(249)]
        assert await provider.known(_unknown([*never, sent.send_id])) == {sent.send_id}
    searches = _calls(service, "messages/search.json")
    assert [s["query"].count(" OR ") + 1 for s in searches] == [100, 100, 50]


@pytest.mark.parametrize("state", [None, "index"])
async def test_without_send_id_indexed_the_search_cannot_tell(state: str | None) -> None:
    """Mandrill searches only the metadata fields the account indexes: without `send_id` (or
    while it is still being indexed) it would find nothing, and all would be sent twice."""
    service = mandrill()
    service.state["indexed"] = {"user_id": "active"} if state is None else {"send_id": state}
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        await provider.send([message(0)])
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown([message(0).send_id]))
    words = str(info.value)
    assert "does not index the metadata field 'send_id'" in words and "Custom Metadata" in words
    assert words.endswith("nothing was resent")
    assert ("(it is 'index')" in words) == (state == "index")
    assert not _calls(service, "messages/search.json")


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (
            JSONResponse(
                {
                    "status": "error",
                    "code": -1,
                    "name": "Invalid_Key",
                    "message": "Invalid API key",
                },
                500,
            ),
            "answered 500: Invalid API key",
        ),
        (
            JSONResponse(
                {
                    "status": "error",
                    "code": -2,
                    "name": "ServiceUnavailable",
                    "message": "Service Temporarily Unavailable",
                },
                503,
            ),
            "answered 503: Service Temporarily Unavailable",
        ),
        (DROP, "did not answer (RemoteProtocolError)"),
        (JSONResponse({"messages": []}), "which cannot tell"),
    ],
)
async def test_a_search_that_cannot_answer_knows_nothing_and_says_so(
    reply: JSONResponse | str, words: str
) -> None:
    service = mandrill()
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        await provider.send([message(0)])
        service.then(JSONResponse([{"name": "send_id", "state": "active"}]), reply)
        with pytest.raises(ProviderError) as info:
            await provider.known(_unknown([message(0).send_id]))
    assert str(info.value).startswith("mandrill's message search") and words in str(info.value)
    assert str(info.value).endswith("nothing was resent") and KEY not in str(info.value)


async def test_deliveries_older_than_the_search_keeps_are_not_asked_about() -> None:
    service = mandrill()
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        with pytest.raises(ProviderError, match="searchable for 30 days.*nothing was resent"):
            await provider.known(_unknown(["a" * 32], datetime.now(UTC) - timedelta(days=31)))
    assert not service.received


async def test_more_unknowns_than_a_minute_of_searches_are_not_asked_about() -> None:
    service = mandrill()
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        with pytest.raises(ProviderError, match="20 calls a minute.*nothing was resent"):
            await provider.known(_unknown([f"{i:032x}" for i in range(1901)]))
    assert not service.received
