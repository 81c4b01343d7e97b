"""The public pages over HTTP (in-process ASGI client): archive, unsubscribe (page and
RFC 8058 one-click), preferences, forward, health; tokens and CSRF refused as they must be."""

from __future__ import annotations

import email
import email.policy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from campaign.audience import Store, Subscriber
from campaign.config import Config
from campaign.links import Links
from campaign.web.app import create_app
from campaign.web.public import strip_links
from tests.web.conftest import BASE_URL, SLUG

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def status(store: Store, email_address: str) -> tuple[str, frozenset[str], frozenset[str]]:
    found = store.find(email_address)
    assert found is not None
    return found.status, found.lists, found.topics


def forwards(workspace: Path) -> list[email.message.EmailMessage]:
    folder = workspace / "outbox" / SLUG
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("fwd-*.eml"))
    ]


def body(message: email.message.EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content())


# ---------------------------------------------------------------- archive


async def test_archive_index_copy_and_feed(
    client: httpx.AsyncClient, sent: str, links: Links
) -> None:
    index = await client.get("/archive")
    assert index.status_code == 200
    assert "A Primer on Worker-Driven Social Responsibility" in index.text
    assert f'href="/archive/{SLUG}"' in index.text

    copy = await client.get(f"/archive/{SLUG}")
    assert copy.status_code == 200
    assert "{{{" not in copy.text
    assert f'href="{BASE_URL}/archive/{SLUG}"' in copy.text
    for purpose in ("unsubscribe", "preferences", "forward"):
        assert f"/{purpose}/" not in copy.text
    assert "<span>unsubscribe from this list</span>" in copy.text
    assert "Ana" not in copy.text

    feed = await client.get("/archive/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    atom = "{http://www.w3.org/2005/Atom}"
    entries = ET.fromstring(feed.content).findall(f"{atom}entry")
    assert [e.findtext(f"{atom}id") for e in entries] == [links.view_url(SLUG)]

    assert (await client.get("/archive/not-sent")).status_code == 404
    assert (await client.get("/archive/..%2F..%2Fetc")).status_code == 404


async def test_archive_is_empty_before_any_send(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "Nothing has been sent yet." in response.text


# ---------------------------------------------------------------- unsubscribe


async def test_get_changes_nothing_and_sets_no_cookie(
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    before = status(store, ana.email)
    response = await client.get(f"/unsubscribe/{links.token('unsubscribe', ana.public_id, SLUG)}")
    assert response.status_code == 200
    assert "Unsubscribe a•••@example.org?" in response.text
    assert "only “newsletter”" in response.text
    assert status(store, ana.email) == before
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in response.headers["content-security-policy"]


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "no content type"])
async def test_one_click_post_as_rfc_8058_describes(
    encoding: str,
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    links: Links,
) -> None:
    url = f"/unsubscribe/{links.token('unsubscribe', ana.public_id, SLUG)}"
    for _ in range(2):  # idempotent
        if encoding == "urlencoded":
            response = await client.post(
                url, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
            )
        elif encoding == "multipart":
            response = await client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
        else:
            response = await client.post(url, content=b"List-Unsubscribe=One-Click")
        assert response.status_code == 200
        assert not response.is_redirect
        assert "set-cookie" not in response.headers
    found = store.find(ana.email)
    assert (
        found is not None and found.status == "unsubscribed" and found.suppressed == "unsubscribed"
    )
    assert [e["kind"] for e in store.history(ana.email)].count("unsubscribed") == 1


async def test_page_unsubscribes_from_this_list_then_resubscribes(
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    url = f"/unsubscribe/{links.token('unsubscribe', ana.public_id, SLUG)}"
    page = await client.get(url)
    left = await client.post(
        url, data={"csrf": csrf_of(page.text), "action": "unsubscribe", "scope": "list"}
    )
    assert left.status_code == 200
    assert "you are unsubscribed from “newsletter”" in left.text
    assert status(store, ana.email)[:2] == ("subscribed", frozenset({"alerts"}))

    back = await client.post(url, data={"csrf": csrf_of(left.text), "action": "resubscribe"})
    assert "subscribed again" in back.text
    assert status(store, ana.email)[:2] == ("subscribed", frozenset({"alerts", "newsletter"}))

    everything = await client.post(
        url, data={"csrf": csrf_of(back.text), "action": "unsubscribe", "scope": "all"}
    )
    assert "You get no emails from" in everything.text
    assert status(store, ana.email)[0] == "unsubscribed"


async def test_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    url = f"/unsubscribe/{links.token('unsubscribe', ana.public_id, SLUG)}"
    other = f"/unsubscribe/{links.token('unsubscribe', ana.public_id, 'another-campaign')}"
    foreign = csrf_of((await client.get(other)).text)
    for data in (
        {"action": "unsubscribe", "scope": "all"},
        {"csrf": "forged", "action": "unsubscribe", "scope": "all"},
        {"csrf": foreign, "action": "unsubscribe", "scope": "all"},
    ):
        response = await client.post(url, data=data)
        assert response.status_code == 403
    prefs = f"/preferences/{links.token('preferences', ana.public_id, SLUG)}"
    assert (
        await client.post(prefs, data={"name": "Mallory", "topic": "research"})
    ).status_code == 403
    forward = f"/forward/{links.token('forward', ana.public_id, SLUG)}"
    assert (await client.post(forward, data={"friend": "x@example.net"})).status_code == 403
    found = store.find(ana.email)
    assert found is not None and found.status == "subscribed" and found.name == "Ana"


async def test_bad_tokens_get_one_page_that_reveals_nothing(
    client: httpx.AsyncClient,
    config: Config,
    store: Store,
    ana: Subscriber,
    links: Links,
) -> None:
    good = links.token("unsubscribe", ana.public_id, SLUG)
    store.subscribe("gone@example.org", list_name="newsletter", source="test")
    gone = store.find("gone@example.org")
    assert gone is not None
    store.delete("gone@example.org")
    expired = Links(config.secret_key, BASE_URL, max_age_days=1)
    expired.max_age = -1
    forged_signer = URLSafeTimedSerializer("not-our-key", salt="campaign.link.unsubscribe")
    bad = {
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "cross-purpose": links.token("preferences", ana.public_id, SLUG),
        "forged": forged_signer.dumps([ana.public_id, SLUG]),
        "unknown subscriber": links.token("unsubscribe", "no-such-id", SLUG),
        "erased subscriber": links.token("unsubscribe", gone.public_id, SLUG),
        "garbage": "not-a-token",
    }
    pages = set()
    for token in bad.values():
        for response in (
            await client.get(f"/unsubscribe/{token}"),
            await client.post(
                f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
            ),
        ):
            assert response.status_code == 400
            pages.add(response.text)
    assert len(pages) == 1
    expiring = create_app(
        config.model_copy(update={"web": config.web.model_copy(update={"token_max_age_days": 1})})
    )
    expiring.state.site.links.max_age = -1
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=expiring), base_url=BASE_URL
    ) as other:
        assert (await other.get(f"/unsubscribe/{good}")).text in pages
    await expiring.state.site.aclose()
    for purpose in ("preferences", "forward"):
        assert (await client.get(f"/{purpose}/{good}")).text in pages
    assert status(store, ana.email)[0] == "subscribed"


async def test_no_redirect_anywhere(
    client: httpx.AsyncClient, ana: Subscriber, links: Links
) -> None:
    for path in (
        "/archive/",
        "//evil.example/",
        "/unsubscribe/",
        "/healthz/",
        "/webhooks/postmark/",
    ):
        response = await client.get(path)
        assert not response.is_redirect, path
        assert "location" not in response.headers


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")


# ---------------------------------------------------------------- preferences


async def test_preferences_change_lists_topics_and_name(
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    links: Links,
) -> None:
    url = f"/preferences/{links.token('preferences', ana.public_id, SLUG)}"
    page = await client.get(url)
    assert 'value="research"' in page.text and 'value="alerts" checked' in page.text
    saved = await client.post(
        url,
        data={
            "csrf": csrf_of(page.text),
            "first_name": "Ana  María ",
            "last_name": "López",
            "list": ["newsletter", "staff-only"],
            "topic": ["research", "nope"],
        },
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    found = store.find(ana.email)
    assert found is not None
    assert (found.recipient().name, found.lists, found.topics) == (
        "Ana María López",
        {"newsletter"},
        {"research"},
    )


async def test_preferences_refuse_a_name_longer_than_the_field(
    client: httpx.AsyncClient, store: Store, ana: Subscriber, links: Links
) -> None:
    """Past the field's maxlength (a hand-made request): a form error naming the field,
    nothing saved, rather than the name cut at 100 characters."""
    url = f"/preferences/{links.token('preferences', ana.public_id, SLUG)}"
    page = await client.get(url)
    assert 'id="first_name" name="first_name"' in page.text and 'maxlength="100"' in page.text
    before = store.find(ana.email)
    refused = await client.post(
        url,
        data={"csrf": csrf_of(page.text), "first_name": "A" * 101, "last_name": "López"},
    )
    assert refused.status_code == 400
    assert "First name is 101 characters long; at most 100 fit." in refused.text
    assert "Saved." not in refused.text and "Last name is" not in refused.text
    assert store.find(ana.email) == before
    fits = await client.post(
        url,
        data={"csrf": csrf_of(page.text), "first_name": "A" * 100, "last_name": "López"},
    )
    assert fits.status_code == 200 and "Saved." in fits.text
    found = store.find(ana.email)
    assert found is not None and found.first_name == "A" * 100


# ---------------------------------------------------------------- forward to a friend


async def test_forward_to_two_friends_without_the_forwarders_links(
    client: httpx.AsyncClient,
    workspace: Path,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    url = f"/forward/{links.token('forward', ana.public_id, SLUG)}"
    page = await client.get(url)
    assert page.status_code == 200
    note = "Worth reading!\nSee https://evil.example/x or www.evil.example and evil.example/path <b>hi</b>"
    response = await client.post(
        url,
        data={
            "csrf": csrf_of(page.text),
            "friend": ["Carla@Example.net", "dan@example.net", "", "carla@example.net"],
            "name": "Ana",
            "note": note,
        },
    )
    assert response.status_code == 200, response.text
    assert "on its way to 2 friends" in response.text
    received = forwards(workspace)
    assert sorted(str(m["To"]) for m in received) == ["carla@example.net", "dan@example.net"]
    personal = [
        links.token(p, ana.public_id, SLUG) for p in ("unsubscribe", "preferences", "forward")
    ]  # type: ignore[arg-type]
    for message in received:
        html, text = body(message, "html"), body(message, "plain")
        assert message["Subject"] == "Fwd: A Primer on Worker-Driven Social Responsibility"
        assert "List-Unsubscribe" not in message
        for content in (html, text, message.as_string()):
            assert not any(token in content for token in personal)
            for purpose in ("/unsubscribe/", "/preferences/", "/forward/"):
                assert purpose not in content
            assert "evil.example" not in content
        assert "Ana thought you would like this email" in text
        assert "&lt;b&gt;hi&lt;/b&gt;" in html and "<b>hi</b>" not in html
        assert f"{BASE_URL}/archive/{SLUG}" in html


async def test_forward_refuses_bad_input_and_skips_suppressed_friends(
    client: httpx.AsyncClient,
    workspace: Path,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    url = f"/forward/{links.token('forward', ana.public_id, SLUG)}"
    csrf = csrf_of((await client.get(url)).text)
    too_many = await client.post(
        url, data={"csrf": csrf, "friend": [f"f{i}@example.net" for i in range(6)]}
    )
    assert too_many.status_code == 400 and "at most 5 addresses" in too_many.text
    long_note = await client.post(
        url, data={"csrf": csrf, "friend": "f@example.net", "note": "x" * 501}
    )
    assert long_note.status_code == 400 and "at most 500 fit" in long_note.text
    long_name = await client.post(
        url, data={"csrf": csrf, "friend": "f@example.net", "name": "N" * 101}
    )
    assert long_name.status_code == 400
    assert "Your name is 101 characters long; at most 100 fit." in long_name.text
    invalid = await client.post(url, data={"csrf": csrf, "friend": "not an address"})
    assert invalid.status_code == 400 and "is not an email address" in invalid.text
    assert forwards(workspace) == []

    store.unsubscribe("blocked@example.net", source="test")
    ok = await client.post(
        url, data={"csrf": csrf, "friend": ["blocked@example.net", "eve@example.net"]}
    )
    assert "on its way to 2 friends" in ok.text  # the page does not tell who is suppressed
    assert [str(m["To"]) for m in forwards(workspace)] == ["eve@example.net"]


async def test_forward_rate_limits_per_subscriber_and_per_ip(
    workspace: Path,
    config: Config,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    limited = config.model_copy(
        update={
            "web": config.web.model_copy(
                update={"forward_per_subscriber_per_hour": 3, "forward_per_ip_per_hour": 4}
            )
        }
    )
    app = create_app(limited)
    bob = store.find("bob@example.org")
    assert bob is not None

    async def forward(who: Subscriber, friends: list[str]) -> httpx.Response:
        url = f"/forward/{links.token('forward', who.public_id, SLUG)}"
        csrf = csrf_of((await client.get(url)).text)
        return await client.post(url, data={"csrf": csrf, "friend": friends})

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        assert (await forward(ana, ["a1@example.net", "a2@example.net"])).status_code == 200
        assert (
            await forward(ana, ["a3@example.net", "a4@example.net"])
        ).status_code == 429  # 4 > 3 per subscriber
        assert (await forward(bob, ["b1@example.net", "b2@example.net"])).status_code == 200
        assert (await forward(bob, ["b3@example.net"])).status_code == 429  # 5 > 4 from this IP
    await app.state.site.aclose()
    assert len(forwards(workspace)) == 4
    from sqlalchemy import select

    from campaign.web.tables import forward_log

    with app.state.site.engine.connect() as connection:
        rows = connection.execute(select(forward_log)).all()
    assert [r.recipients for r in rows] == [2, 2]
    assert all("example" not in str(tuple(r)) and "127.0.0.1" not in str(tuple(r)) for r in rows)


def test_strip_links() -> None:
    assert (
        strip_links("see https://a.example/x, www.b.example and c.example/y or mail d@e.example")
        == "see and or mail"
    )
    assert (
        strip_links("Plain words. Nothing else!\r\nSecond line\x07")
        == "Plain words. Nothing else!\nSecond line"
    )


async def test_an_unreadable_form_is_a_bad_request(
    client: httpx.AsyncClient, ana: Subscriber, links: Links
) -> None:
    url = f"/unsubscribe/{links.token('unsubscribe', ana.public_id, SLUG)}"
    response = await client.post(
        url, content=b"--x\r\nnot a part", headers={"Content-Type": "multipart/form-data"}
    )
    assert response.status_code == 400


async def test_forward_through_the_local_postmark_server(
    workspace: Path,
    config: Config,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    from campaign.config import ProviderSettings
    from campaign.providers.postmark import TOKEN_ENV
    from tests.servers import serve
    from tests.servers.postmark import TOKEN, PostmarkServer

    postmark = PostmarkServer(keep_payloads=True)
    with serve(postmark.app) as postmark_url:
        through_postmark = config.model_copy(
            update={
                "provider": ProviderSettings(name="postmark", base_url=postmark_url),
                "env": {**config.env, TOKEN_ENV: TOKEN},
            }
        )
        app = create_app(through_postmark)
        url = f"/forward/{links.token('forward', ana.public_id, SLUG)}"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL
        ) as client:
            csrf = csrf_of((await client.get(url)).text)
            response = await client.post(
                url, data={"csrf": csrf, "friend": ["carla@example.net", "dan@example.net"]}
            )
        await app.state.site.aclose()
    assert response.status_code == 200, response.text
    assert sorted(postmark.deliveries()) == ["carla@example.net", "dan@example.net"]
    [batch] = postmark.payloads
    personal = [
        links.token(p, ana.public_id, SLUG) for p in ("unsubscribe", "preferences", "forward")
    ]  # type: ignore[arg-type]
    for message in batch:
        sent_text = json.dumps(message)
        assert not any(token in sent_text for token in personal)
        assert "List-Unsubscribe" not in sent_text
        assert f"{BASE_URL}/archive/{SLUG}" in message["HtmlBody"]
