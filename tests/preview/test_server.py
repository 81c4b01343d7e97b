"""The preview server over real HTTP: pages, links, images, live-reload events, refusals."""

from __future__ import annotations

import html
import json
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from campaign.audience import Store
from campaign.compile import build
from campaign.compile.kinds import BLOCKS
from campaign.config import load_config
from campaign.schedule import schedule_send
from campaign.web.preview import create_preview_app
from tests.conftest import own_layout, real_sender
from tests.preview.conftest import EXAMPLE
from tests.servers import mailgun, serve

PUBLIC = "https://news.example.org"  # public_base_url of the repository's campaign.toml


def events(response: httpx.Response) -> Iterator[tuple[str, dict[str, object]]]:
    """The server-sent events of a streaming response, as (event name, data)."""
    name = "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: ") :])
            name = "message"


def raw_get(base: str, target: str, host: str | None = None) -> tuple[int, bytes]:
    """GET `target` byte for byte (httpx would normalise dot segments away)."""
    parts = urlsplit(base)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {host or parts.netloc}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_index_lists_the_example(preview_url: str) -> None:
    page = httpx.get(preview_url + "/")
    assert page.status_code == 200
    assert f'href="/campaigns/{EXAMPLE}"' in page.text
    assert "A Primer on Worker-Driven Social Responsibility" in page.text
    assert "newsletter" in page.text


def test_campaign_page_shows_size_headers_text_and_sample(preview_url: str) -> None:
    page = httpx.get(f"{preview_url}/campaigns/{EXAMPLE}")
    assert page.status_code == 200
    size = re.search(r'<meter [^>]*value="(\d+)"', page.text)
    source = re.search(r'<pre id="source">(.*?)</pre>', page.text, re.DOTALL)
    assert size and source
    sent = html.unescape(source.group(1))
    assert sent.startswith("<!doctype html>") and "{{{" not in sent
    assert int(size.group(1)) == len(sent.encode("utf-8")) < 102 * 1024
    assert "Gmail's 102.0 KB clip" in page.text
    headers = re.search(r'<table class="headers" id="headers">(.*?)</table>', page.text, re.DOTALL)
    assert headers
    for name in (
        "From",
        "To",
        "Subject",
        "Reply-To",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
    ):
        assert f"<th>{name}</th>" in headers.group(1)
    assert "List-Unsubscribe=One-Click" in headers.group(1)
    assert "Sam Sample &lt;sam.sample@example.org&gt;" in headers.group(1)
    text = re.search(r'<pre id="text">(.*?)</pre>', page.text, re.DOTALL)
    assert text and "A Primer on Worker-Driven Social Responsibility" in text.group(1)
    assert f"{preview_url}/preview-pages/unsubscribe/" in text.group(1)
    assert "a made-up subscriber" in page.text


def test_email_links_lead_to_the_preview_never_to_the_public_site(preview_url: str) -> None:
    email = httpx.get(f"{preview_url}/campaigns/{EXAMPLE}/email.html").text
    hrefs = re.findall(r'href="([^"]+)"', email)
    assert not [h for h in hrefs if h.startswith(PUBLIC)]
    pages = {
        kind: next(h for h in hrefs if f"/preview-pages/{kind}/" in h)
        for kind in ("archive", "forward", "preferences", "unsubscribe")
    }
    for kind, url in pages.items():
        reply = httpx.get(url)
        assert reply.status_code == 200, kind
    unsubscribe = httpx.get(pages["unsubscribe"]).text
    assert "<strong>Preview</strong> of the public unsubscribe page" in unsubscribe
    assert "Unsubscribe s•••@example.org?" in unsubscribe  # the public site's own template
    action = re.search(r'<form method="post" action="([^"]+)"', unsubscribe)
    assert action and action.group(1) == urlsplit(pages["unsubscribe"]).path
    submitted = httpx.post(
        preview_url + action.group(1), data={"action": "unsubscribe", "scope": "all"}
    )
    assert "Nothing was changed: this is a preview" in submitted.text
    preferences = httpx.get(pages["preferences"]).text
    assert "<strong>Preview</strong> of the public preferences page" in preferences
    assert f'href="{preview_url}/preview-pages/unsubscribe/' in preferences
    assert 'name="first_name" value="Sam"' in preferences
    assert 'name="last_name" value="Sample"' in preferences
    forward = httpx.get(pages["forward"]).text
    assert "<strong>Preview</strong> of the public forward page" in forward
    assert "A Primer on Worker-Driven Social Responsibility" in forward
    archive = httpx.get(pages["archive"]).text  # the impersonal web copy, as the archive shows it
    assert "Primer on Worker-Driven" in archive and "/preview-pages/unsubscribe/" not in archive
    assert not [h for h in re.findall(r'href="([^"]+)"', archive) if h.startswith(PUBLIC)]
    # Only tokens this preview signed open a stand-in page.
    assert httpx.get(f"{preview_url}/preview-pages/unsubscribe/forged.token").status_code == 404
    forward_token = pages["forward"].rsplit("/", 1)[1]
    assert httpx.get(f"{preview_url}/preview-pages/unsubscribe/{forward_token}").status_code == 404


def test_images_are_served_from_the_workspace(preview_url: str) -> None:
    email = httpx.get(f"{preview_url}/campaigns/{EXAMPLE}/email.html").text
    sources = re.findall(r'<img [^>]*src="([^"]+)"', email)
    local = [s for s in sources if s.startswith(preview_url)]
    assert len(local) >= 4 and not [s for s in sources if s.startswith(PUBLIC)]
    for source in local:
        reply = httpx.get(source)
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/png", source
    assert httpx.get(f"{preview_url}/campaigns/{EXAMPLE}/assets/banner.png").status_code == 404


def test_merge_fields_filled_for_the_first_subscriber(workspace: Path) -> None:
    spotlight = workspace / "campaigns" / EXAMPLE / "spotlight.md"
    spotlight.write_text("Dear {{ first_name }},\n\n" + spotlight.read_text())
    config = load_config(workspace)
    Store.open(config).subscribe(
        "ada@example.org", list_name="newsletter", source="test", first_name="Ada <b>"
    )
    app = create_preview_app(config, None)
    with serve(app) as url:
        page = httpx.get(f"{url}/campaigns/{EXAMPLE}").text
        email = httpx.get(f"{url}/campaigns/{EXAMPLE}/email.html").text
        unsubscribe = re.search(r'href="(http://127[^"]+/preview-pages/unsubscribe/[^"]+)"', email)
        assert unsubscribe
        posted = httpx.post(unsubscribe.group(1), data={"action": "unsubscribe", "scope": "all"})
    app.state.preview.close()
    assert "Dear Ada &lt;b&gt;," in email
    assert "the first subscriber of the list newsletter" in page
    assert "ada@example.org" in page
    assert "Nothing was changed" in posted.text
    found = Store.open(config).find("ada@example.org")
    assert found and found.mailable and found.lists == {"newsletter"}


@pytest.mark.parametrize(
    "target",
    [
        "/campaigns/../../etc/passwd",
        "/campaigns/..%2F..%2Fetc%2Fpasswd",
        "/campaigns/%2e%2e/%2e%2e/etc/passwd",
        "/campaigns/%2e%2e%2f%2e%2e%2fcampaign.toml",
        "/campaigns/%252e%252e%252fcampaign.toml",
        "/campaigns/..",
        f"/campaigns/{EXAMPLE}/assets/..%2F..%2F..%2Fcampaign.toml",
        f"/campaigns/{EXAMPLE}/assets/%2e%2e%2fcampaign.yaml",
        f"/campaigns/{EXAMPLE}/assets/..%5c..%5ccampaign.toml",
        "/campaigns/%2e%2e%2f%2e%2e%2fcampaigns%2f" + EXAMPLE + "/email.html",
        "/static/../../preview.py",
        "/static/..%2f..%2fpreview.py",
        "/static/%2e%2e/%2e%2e/%2e%2e/config.py",
        "/preview-pages/archive/..%2F..%2Fetc%2Fpasswd",
        "/preview-pages/archive/..",
        "/campaigns/%00",
        "/campaigns/%ff%fe",
    ],
)
def test_paths_outside_the_workspace_are_refused(preview_url: str, target: str) -> None:
    status, body = raw_get(preview_url, target)
    assert status in (400, 404), body[:300]
    for secret in (b"root:", b"public_base_url", b"import ", b"subject:"):
        assert secret not in body
    assert httpx.get(preview_url + "/").status_code == 200  # and the server goes on


def test_foreign_host_header_and_cross_site_post_are_refused(preview_url: str) -> None:
    status, _ = raw_get(preview_url, "/", host="evil.example")
    assert status == 400
    reply = httpx.post(
        f"{preview_url}/campaigns/{EXAMPLE}/send-test",
        data={"addresses": "me@example.org"},
        headers={"Origin": "https://evil.example"},
    )
    assert reply.status_code == 403 and not reply.json()["ok"]


def test_send_test_needs_an_address(preview_url: str) -> None:
    reply = httpx.post(f"{preview_url}/campaigns/{EXAMPLE}/send-test", data={"addresses": " , "})
    assert reply.status_code == 400 and reply.json()["message"] == "Type at least one address."


def test_unknown_campaign_is_404(preview_url: str) -> None:
    assert httpx.get(f"{preview_url}/campaigns/no-such-campaign").status_code == 404
    assert httpx.get(f"{preview_url}/campaigns/no-such-campaign/email.html").status_code == 404


def test_saving_a_file_announces_the_rebuild(workspace: Path, preview_url: str) -> None:
    """The event comes after the rebuild: the page fetched on it already has the change."""
    httpx.get(f"{preview_url}/campaigns/{EXAMPLE}")
    with httpx.stream("GET", f"{preview_url}/events?campaign={EXAMPLE}", timeout=10) as stream:
        received = events(stream)
        name, hello = next(received)
        assert name == "hello"
        spotlight = workspace / "campaigns" / EXAMPLE / "spotlight.md"
        spotlight.write_text(spotlight.read_text() + "\nA sentence added while previewing.\n")
        name, data = next(received)  # a read timeout (10 s) fails the test
    assert (
        name == "build"
        and EXAMPLE in data["campaigns"]
        and data["generation"] == hello["generation"] + 1
    )
    assert (
        "A sentence added while previewing."
        in httpx.get(f"{preview_url}/campaigns/{EXAMPLE}/email.html").text
    )


def test_broken_yaml_shows_file_and_line_and_recovers(workspace: Path, preview_url: str) -> None:
    path = workspace / "campaigns" / EXAMPLE / "campaign.yaml"
    good = path.read_text()
    httpx.get(f"{preview_url}/campaigns/{EXAMPLE}")
    with httpx.stream("GET", f"{preview_url}/events?campaign={EXAMPLE}", timeout=10) as stream:
        received = events(stream)
        next(received)
        path.write_text(good.replace("layout: newsletter", "layout: [newsletter"))
        next(received)
        broken = httpx.get(f"{preview_url}/campaigns/{EXAMPLE}").text
        path.write_text(good)
        next(received)
    assert re.search(
        rf"campaigns/{EXAMPLE}/campaign.yaml:\d+</code> "
        r'<span class="level">error:</span> YAML syntax error',
        broken,
    )
    assert "showing the last good build" in broken
    fixed = httpx.get(f"{preview_url}/campaigns/{EXAMPLE}").text
    assert 'id="build-errors"' not in fixed and 'id="built-at"' in fixed


def test_new_campaign_appears_in_the_index(workspace: Path, preview_url: str) -> None:
    httpx.get(preview_url + "/")
    with httpx.stream("GET", f"{preview_url}/events", timeout=10) as stream:
        received = events(stream)
        next(received)
        folder = workspace / "campaigns" / "2026-01-new"
        folder.mkdir()
        (folder / "campaign.yaml").write_text("subject: Fresh\nlayout: nope\n")
        _name, data = next(received)
    assert "2026-01-new" in data["campaigns"]
    index = httpx.get(preview_url + "/").text
    assert 'href="/campaigns/2026-01-new"' in index
    page = httpx.get(f"{preview_url}/campaigns/2026-01-new")
    assert page.status_code == 200 and "does not build" in page.text and "nope" in page.text


def wait_for_build(
    preview_url: str, slug: str | None, change: Callable[[], None]
) -> dict[str, object]:
    """Make `change` while listening, and return the build event it causes (10 s read deadline)."""
    with httpx.stream(
        "GET", f"{preview_url}/events" + (f"?campaign={slug}" if slug else ""), timeout=10
    ) as stream:
        received = events(stream)
        assert next(received)[0] == "hello"
        change()
        for name, data in received:
            if name == "build":
                return data
    raise AssertionError("the event stream ended")


@pytest.fixture
def owned_layout(workspace: Path) -> Path:
    return own_layout(workspace)


def test_layout_and_image_changes_rebuild(
    owned_layout: Path, workspace: Path, preview_url: str
) -> None:
    email = f"{preview_url}/campaigns/{EXAMPLE}/email.html"
    before = httpx.get(email).text
    image = next((workspace / "campaigns" / EXAMPLE / "images").glob("*.png"))
    data = wait_for_build(
        preview_url, EXAMPLE, lambda: image.write_bytes(image.read_bytes() + b"\0")
    )
    assert data["campaigns"] == [EXAMPLE]
    after = httpx.get(email).text
    assert after != before  # a new fingerprint in the image's name
    new_images = set(re.findall(r'src="([^"]+)"', after)) - set(
        re.findall(r'src="([^"]+)"', before)
    )
    assert len(new_images) == 1 and httpx.get(new_images.pop()).status_code == 200

    # the layout's own copy of a block library partial replaces it
    partial = owned_layout / "partials" / "spotlight.mjml.j2"
    library = (BLOCKS / "spotlight.mjml.j2").read_text()
    edited = library.replace("{{ section.body }}", "{{ section.body }} Layout edited.", 1)
    assert "Layout edited." not in after and edited != library

    def override() -> None:
        partial.parent.mkdir()
        partial.write_text(edited)

    wait_for_build(preview_url, EXAMPLE, override)
    assert "Layout edited." in httpx.get(email).text


def test_broken_campaign_toml_is_shown_and_recovers(workspace: Path, preview_url: str) -> None:
    toml = workspace / "campaign.toml"
    good = toml.read_text()
    page = f"{preview_url}/campaigns/{EXAMPLE}"
    httpx.get(page)
    wait_for_build(
        preview_url,
        EXAMPLE,
        lambda: toml.write_text(good.replace('timezone = "', 'timezone = "Mars/')),
    )
    broken = httpx.get(page).text
    assert "campaign.toml has a problem" in broken and "Mars/" in broken
    assert 'id="built-at"' in broken  # still previewing with the previous settings
    wait_for_build(
        preview_url,
        EXAMPLE,
        lambda: toml.write_text(
            good.replace("Colorado Human Trafficking Council", "Renamed Council")
        ),
    )
    fixed = httpx.get(page).text
    assert "campaign.toml has a problem" not in fixed
    assert "Renamed Council" in httpx.get(f"{page}/email.html").text


def test_a_crash_in_the_build_shows_in_the_page(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(config: object, ref: object) -> None:
        raise RuntimeError("compiler bug")

    monkeypatch.setattr("campaign.compile.build", crash)
    app = create_preview_app(load_config(workspace), None)
    with serve(app) as url:
        page = httpx.get(f"{url}/campaigns/{EXAMPLE}")
        index = httpx.get(url + "/")
        frame = httpx.get(f"{url}/campaigns/{EXAMPLE}/email.html")
    app.state.preview.close()
    assert page.status_code == 200 and "internal error: RuntimeError: compiler bug" in page.text
    assert index.status_code == 200 and "1 problem" in index.text
    assert frame.status_code == 404


def test_schedule_status_in_the_index(workspace: Path) -> None:
    config = load_config(workspace)
    schedule_send(config, build(config, EXAMPLE), list_name="newsletter", at="2099-12-01 09:00")
    app = create_preview_app(config, None)
    with serve(app) as url:
        index = httpx.get(url + "/").text
        page = httpx.get(f"{url}/campaigns/{EXAMPLE}").text
    app.state.preview.close()
    assert "scheduled · 2099-12-01 09:00 MST" in index
    assert "scheduled · 2099-12-01 09:00 MST" in page


def test_campaign_outside_campaigns_folder(workspace: Path) -> None:
    """A folder given on the command line is previewed (and watched) like those under campaigns/."""
    elsewhere = workspace / "drafts" / "december"
    shutil.copytree(workspace / "campaigns" / EXAMPLE, elsewhere)
    app = create_preview_app(load_config(workspace), "drafts/december")
    assert app.state.preview.start_slug == "december"
    with serve(app) as url:
        index = httpx.get(url + "/").text
        email = httpx.get(f"{url}/campaigns/december/email.html").text
        images = [
            httpx.get(src).status_code
            for src in re.findall(r'<img [^>]*src="(http://127[^"]+)"', email)
        ]
        markdown = elsewhere / "spotlight.md"
        wait_for_build(
            url,
            "december",
            lambda: markdown.write_text(markdown.read_text() + "\nDecember draft.\n"),
        )
        assert "December draft." in httpx.get(f"{url}/campaigns/december/email.html").text
    app.state.preview.close()
    assert 'href="/campaigns/december"' in index and f'href="/campaigns/{EXAMPLE}"' in index
    assert images and set(images) == {200}


def test_build_warnings_are_listed(workspace: Path, preview_url: str) -> None:
    yaml_file = workspace / "campaigns" / EXAMPLE / "campaign.yaml"
    yaml_file.write_text(re.sub(r"(?m)^preheader:.*\n", "", yaml_file.read_text()))
    page = httpx.get(f"{preview_url}/campaigns/{EXAMPLE}").text
    warnings = re.search(
        r'<section class="warnings" id="warnings">(.*?)</section>', page, re.DOTALL
    )
    assert warnings and "1 warning" in warnings.group(1) and "no preheader" in warnings.group(1)
    assert re.search(r"<td>1</td>\s*<td></td>\s*</tr>", httpx.get(preview_url + "/").text)


def test_a_personal_subject_is_shown_as_written_and_filled_for_the_sample(
    workspace: Path, preview_url: str
) -> None:
    from tests.compile.test_merge_fields import write_greeting

    slug = write_greeting(workspace)
    index = httpx.get(preview_url + "/").text
    assert "{{ first_name | default(&#34;Friend&#34;) }}, your digest 🎉" in index
    page = httpx.get(f"{preview_url}/campaigns/{slug}").text
    assert "{{{" not in page
    headers = re.search(r'<table class="headers" id="headers">(.*?)</table>', page, re.DOTALL)
    assert headers and "Sam, your digest 🎉" in headers.group(1)


def test_send_test_runs_preflight_first(workspace: Path) -> None:
    """Preview's "Send a test" runs the checks a send runs: a real provider with a loopback
    public URL is refused, and the service's double receives nothing."""

    service = mailgun.mailgun()
    with serve(service) as api:
        real_sender(
            workspace,
            f'[provider]\nname = "mailgun"\ndomain = "{mailgun.DOMAIN}"\nbase_url = "{api}"\n',
        )
        toml = workspace / "campaign.toml"
        toml.write_text(
            toml.read_text().replace("https://news.coloradohtc.org", "http://127.0.0.1:8000")
        )
        with (workspace / ".env").open("a") as env:
            env.write(f"MAILGUN_API_KEY={mailgun.KEY}\n")
        app = create_preview_app(load_config(workspace), None)
        try:
            with serve(app) as url:
                reply = httpx.post(
                    f"{url}/campaigns/{EXAMPLE}/send-test",
                    data={"addresses": "me@coloradohtc.org"},
                )
        finally:
            app.state.preview.close()
    assert reply.status_code == 400 and not reply.json()["ok"]
    assert (
        "campaign.toml:4: error: public_base_url http://127.0.0.1:8000" in reply.json()["message"]
    )
    assert service.received == []
