"""Postmark: the exact request sent, each message's ErrorCode read, failures mapped.

Runs against tests/servers/postmark.py, a local server that checks requests the way
Postmark's documentation describes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from campaign.errors import ConfigError, ProviderError
from campaign.message import Message
from campaign.providers import Status
from campaign.providers.postmark import PostmarkProvider
from tests.servers import serve
from tests.servers.postmark import TOKEN, PostmarkServer, Reply


@pytest.fixture
def server() -> Iterator[tuple[PostmarkServer, str]]:
    fake = PostmarkServer(keep_payloads=True)
    with serve(fake.app) as url:
        yield fake, url


def provider(url: str, token: str = TOKEN, **options: object) -> PostmarkProvider:
    return PostmarkProvider({"base_url": url, **options}, {"POSTMARK_SERVER_TOKEN": token})


def message(n: int = 1, **changes: object) -> Message:
    fields: dict[str, object] = dict(
        send_id=f"sid{n}",
        campaign="2018-11-wsr-primer",
        from_="Colorado Human Trafficking Council <newsletter@news.example.org>",
        to_email=f"user{n}@example.com",
        to_name=f"Ana López {n}",
        subject="A Primer",
        html="<p>Hi</p>",
        text="Hi",
        reply_to="chtc@example.org",
        headers={
            "Date": "Wed, 25 Nov 2026 12:00:00 GMT",
            "Message-ID": f"<sid{n}@news.example.org>",
            "List-Unsubscribe": f"<https://news.example.org/unsubscribe/tok{n}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "<newsletter.news.example.org>",
            "X-Campaign": "2018-11-wsr-primer",
            "X-Campaign-Send-Id": f"sid{n}",
        },
    )
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


# -- standard ---------------------------------------------------------------------------------


async def test_exact_request(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    async with provider(url) as postmark:
        results = await postmark.send([message(1)])
    assert (
        results[0].status is Status.ACCEPTED
        and results[0].provider_id == fake.accepted[0].message_id
    )
    headers = fake.requests[0]
    assert headers["x-postmark-server-token"] == TOKEN
    assert headers["content-type"] == "application/json" and headers["accept"] == "application/json"
    assert fake.payloads[0] == [
        {
            "From": "Colorado Human Trafficking Council <newsletter@news.example.org>",
            "To": '"Ana López 1" <user1@example.com>',
            "Subject": "A Primer",
            "HtmlBody": "<p>Hi</p>",
            "TextBody": "Hi",
            "MessageStream": "broadcast",
            "Tag": "2018-11-wsr-primer",
            "Metadata": {"send_id": "sid1", "campaign": "2018-11-wsr-primer"},
            "Headers": [
                {
                    "Name": "List-Unsubscribe",
                    "Value": "<https://news.example.org/unsubscribe/tok1>",
                },
                {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                {"Name": "List-Id", "Value": "<newsletter.news.example.org>"},
                {"Name": "X-Campaign", "Value": "2018-11-wsr-primer"},
                {"Name": "X-Campaign-Send-Id", "Value": "sid1"},
            ],
            "ReplyTo": "chtc@example.org",
        }
    ]


async def test_options_stream_and_tracking(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    async with provider(
        url, message_stream="newsletters", track_opens=True, track_links="HtmlOnly"
    ) as postmark:
        await postmark.send([message(1, reply_to=None)])
    sent = fake.payloads[0][0]
    assert (sent["MessageStream"], sent["TrackOpens"], sent["TrackLinks"]) == (
        "newsletters",
        True,
        "HtmlOnly",
    )
    assert "ReplyTo" not in sent


async def test_full_batch_of_500_in_one_request(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    async with provider(url) as postmark:
        results = await postmark.send([message(n) for n in range(500)])
    assert len(fake.requests) == 1 and len(fake.accepted) == 500
    assert all(r.status is Status.ACCEPTED for r in results)
    assert [r.send_id for r in results] == [f"sid{n}" for n in range(500)]


# -- recipient status -------------------------------------------------------------------------


async def test_each_error_code_read_from_a_200_reply(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    fake.inactive.add("user2@example.com")
    async with provider(url) as postmark:
        results = await postmark.send(
            [message(1), message(2), message(3, to_email="not-an-address", to_name="")]
        )
    assert [r.status for r in results] == [Status.ACCEPTED, Status.REJECTED, Status.REJECTED]
    assert "406" in results[1].reason and "inactive" in results[1].reason
    assert "300" in results[2].reason


def _answer(code: int, text: str = "x") -> httpx.Response:
    return httpx.Response(200, json=[{"ErrorCode": code, "Message": text}])


async def test_per_message_codes_mapped() -> None:
    codes = iter([100, 429, 412, 999])

    def handler(request: httpx.Request) -> httpx.Response:
        return _answer(next(codes))

    postmark = PostmarkProvider(
        {}, {"POSTMARK_SERVER_TOKEN": TOKEN}, transport=httpx.MockTransport(handler)
    )
    assert (await postmark.send([message()]))[0].status is Status.RETRY
    assert (await postmark.send([message()]))[0].status is Status.THROTTLED
    with pytest.raises(ProviderError, match="account is pending"):
        await postmark.send([message()])
    result = (await postmark.send([message()]))[0]
    assert result.status is Status.REJECTED and "999" in result.reason
    await postmark.aclose()


async def test_account_error_beside_accepted_messages_blocks_the_rest() -> None:
    """Raising would put the accepted message back in the queue: it must be reported accepted,
    and the refused one held back (BLOCKED: pending again, and the send stops)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=[
                {"ErrorCode": 0, "Message": "OK", "MessageID": "m1"},
                {"ErrorCode": 405, "Message": "no"},
            ],
        )

    async with PostmarkProvider(
        {}, {"POSTMARK_SERVER_TOKEN": TOKEN}, transport=httpx.MockTransport(handler)
    ) as postmark:
        results = await postmark.send([message(1), message(2)])
    assert [r.status for r in results] == [Status.ACCEPTED, Status.BLOCKED]
    assert "not allowed to send" in results[1].reason


# -- errors -----------------------------------------------------------------------------------


async def test_429_and_500_retried_with_retry_after(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    fake.then(Reply(429, headers={"Retry-After": "7"}), Reply(500))
    async with provider(url) as postmark:
        first = await postmark.send([message()])
        second = await postmark.send([message()])
    assert first[0].status is Status.THROTTLED and first[0].retry_after == 7
    assert second[0].status is Status.RETRY and second[0].retry_after is None
    assert not fake.accepted


async def test_401_stops_and_never_shows_the_token(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    async with provider(url, token="wrong-secret-token") as postmark:
        with pytest.raises(ProviderError) as info:
            await postmark.send([message()])
    assert "401" in str(info.value) and "Server Token" in str(info.value)
    assert "wrong-secret-token" not in str(info.value)


async def test_422_stops_with_postmarks_message(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    fake.then(
        Reply(
            422,
            body={
                "ErrorCode": 400,
                "Message": "The 'From' address you supplied is not a Sender Signature.",
            },
        )
    )
    async with provider(url) as postmark:
        with pytest.raises(ProviderError, match="not a Sender Signature"):
            await postmark.send([message()])


async def test_hang_and_dropped_connection_are_unknown(
    server: tuple[PostmarkServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = server
    monkeypatch.setattr(PostmarkProvider, "timeout", httpx.Timeout(0.3))
    fake.then(Reply(hang=2.0), Reply(drop=True))
    async with provider(url) as postmark:
        hung = await postmark.send([message(1)])
        dropped = await postmark.send([message(2)])
    assert hung[0].status is Status.UNKNOWN and dropped[0].status is Status.UNKNOWN
    assert len(fake.accepted) == 2  # both went out: exactly why they are unknown, not retried


async def test_unreachable_is_retried() -> None:
    async with provider("http://127.0.0.1:9") as postmark:
        result = (await postmark.send([message()]))[0]
    assert result.status is Status.RETRY


async def test_server_refuses_more_than_500(server: tuple[PostmarkServer, str]) -> None:
    fake, url = server
    payload = json.dumps([{"From": "a@b.c", "To": "d@e.f", "Subject": "s", "TextBody": "t"}] * 501)
    response = httpx.post(
        f"{url}/email/batch",
        content=payload,
        headers={"X-Postmark-Server-Token": TOKEN, "Content-Type": "application/json"},
    )
    assert response.status_code == 422 and response.json()["ErrorCode"] == 410


# -- configuration ----------------------------------------------------------------------------


def test_token_from_environment_named_when_missing() -> None:
    with pytest.raises(ConfigError, match="POSTMARK_SERVER_TOKEN"):
        PostmarkProvider({}, {})


def test_default_base_url_and_unknown_option() -> None:
    assert provider("").base_url == "https://api.postmarkapp.com"
    with pytest.raises(ConfigError, match="colour"):
        PostmarkProvider({"colour": "red"}, {"POSTMARK_SERVER_TOKEN": TOKEN})
