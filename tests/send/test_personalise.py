"""Personalisation: merge fields can add neither markup nor headers; links carry valid tokens."""

from __future__ import annotations

import email
import email.policy
import html
import re
from dataclasses import dataclass, field

import orjson
import pytest

from campaign.links import Links
from campaign.personalise import TEST_PREFIX, Personaliser, Template
from tests.send.conftest import HTML, compiled

LINKS = Links("k" * 32, "https://news.example.org")
HOSTILE = {
    "first_name": "<script>alert(1)</script>",
    "organisation": '"><img src=x onerror=alert(1)>',
}
CRLF_NAME = "Eve\r\nBcc: x@evil.test"


@dataclass(frozen=True)
class R:
    public_id: str
    email: str
    name: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    id: int = 1


def personaliser(raw: bool = True, **kwargs: object) -> Personaliser:
    return Personaliser(compiled(), LINKS, list_id="<news.news.example.org>", raw=raw, **kwargs)  # type: ignore[arg-type]


def tags(markup: str) -> list[str]:
    return re.findall(r"<\s*([a-zA-Z]+)", markup)


def test_hostile_merge_fields_change_no_markup() -> None:
    message = personaliser().message(R("pub1", "eve@example.com", CRLF_NAME, HOSTILE), "sid1")
    assert tags(message.html) == tags(HTML)  # the same elements, in the same order: nothing added
    assert "<script>" not in message.html and "<img" not in message.html
    assert html.escape(HOSTILE["first_name"]) in message.html
    assert html.escape(HOSTILE["organisation"]) in message.html
    assert HOSTILE["first_name"] in message.text  # plain text is not markup: shown as typed


def test_hostile_name_changes_no_header() -> None:
    fields = {**HOSTILE, "first_name": "Eve\r\nBcc: y@evil.test"}
    message = personaliser().message(R("pub1", "eve@example.com", CRLF_NAME, fields), "sid1")
    assert message.raw is not None
    head = message.raw.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0] for line in head.split(b"\r\n") if line and not line[:1].isspace()
    ]
    assert b"Bcc" not in names
    assert names == [
        b"From",
        b"To",
        b"Subject",
        b"Reply-To",
        b"Date",
        b"Message-ID",
        b"List-Unsubscribe",
        b"List-Unsubscribe-Post",
        b"Precedence",
        b"List-Id",
        b"X-Campaign",
        b"X-Campaign-Send-Id",
        b"MIME-Version",
        b"Content-Type",
    ]
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["eve@example.com"]
    assert "\n" not in message.to_name and "\r" not in message.to_name


def test_links_carry_valid_tokens_of_the_recipient() -> None:
    p = personaliser()
    one = p.message(R("pub-one", "a@example.com"), "s1")
    two = p.message(R("pub-two", "b@example.com"), "s2")
    for message, public_id in ((one, "pub-one"), (two, "pub-two")):
        urls = dict(
            re.findall(
                r'href="https://news.example.org/(forward|preferences|unsubscribe)/([^"]+)"',
                message.html,
            )
        )
        assert set(urls) == {"forward", "preferences", "unsubscribe"}
        for purpose, token in urls.items():
            claims = LINKS.verify(purpose, token)  # type: ignore[arg-type]
            assert (claims.subscriber, claims.campaign) == (public_id, "c1")
        assert (
            message.headers["List-Unsubscribe"]
            == f"<https://news.example.org/unsubscribe/{urls['unsubscribe']}>"
        )
    view = 'href="https://news.example.org/archive/c1"'
    assert view in one.html and view in two.html  # the view link is the same for everyone


def test_headers() -> None:
    message = Personaliser(
        compiled(),
        LINKS,
        list_id="<news.news.example.org>",
        unsubscribe_mailto="unsubscribe@news.example.org",
    ).message(R("p", "a@example.com", "Ann"), "sid9")
    assert message.headers["Message-ID"] == "<sid9@news.example.org>"
    one_click, mailto = re.fullmatch(
        r"<https://news\.example\.org/unsubscribe/(\S+)>, "
        r"<mailto:unsubscribe@news\.example\.org\?subject=unsubscribe%20(\S+)>",
        message.headers["List-Unsubscribe"],
    ).groups()  # type: ignore[union-attr]
    assert mailto == one_click  # per recipient: the mailbox reader verifies the same token
    assert LINKS.verify("unsubscribe", mailto).subscriber == "p"
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.headers["Precedence"] == "bulk"
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000", message.headers["Date"])
    assert message.headers["X-Campaign"] == "c1" and message.headers["X-Campaign-Send-Id"] == "sid9"
    assert message.raw is None  # only providers that want MIME get it built


def test_test_prefix_and_fields_in_subject() -> None:
    c = compiled(subject="News for {{{field:first_name}}}")
    p = Personaliser(c, LINKS, list_id="<x>", subject_prefix=TEST_PREFIX)
    assert (
        p.message(R("p", "a@example.com", fields={"first_name": "Ann\r\nBcc: x"}), "s").subject
        == "[TEST] News for Ann  Bcc: x"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no tokens",
        "{{{link:view}}}",
        "a{{{field:x}}}b{{{field:x}}}c{{{link:unsubscribe}}}",
        "{{{field:a}}}{{{field:b}}}",
    ],
)
def test_template_fill_equals_replacing(text: str) -> None:
    values = {
        "link:view": "V",
        "field:x": "<X>",
        "link:unsubscribe": "U",
        "field:a": "A",
        "field:b": "",
    }
    template = Template(text)
    expected = text
    for slot, value in values.items():
        expected = expected.replace("{{{" + slot + "}}}", value)
    assert template.fill(template.values(values)) == expected


def test_missing_field_is_empty_and_first_name_falls_back_to_name() -> None:
    c = compiled(html="<p>{{{field:first_name}}}|{{{field:nickname}}}|{{{field:email}}}</p>")
    message = Personaliser(c, LINKS, list_id="<x>").message(R("p", "a@example.com", "Ann Lee"), "s")
    assert message.html == "<p>Ann||a@example.com</p>"


def test_fast_urls_are_the_urls_links_makes() -> None:
    for _ in range(3):  # the tokens carry a timestamp: retry if a second boundary fell between
        fast = LINKS.urls("pub-1", "c1")
        if all(fast[p] == LINKS.url(p, "pub-1", "c1") for p in fast):
            return
    raise AssertionError(f"Links.urls differs from Links.url: {fast}")


def test_json_bodies_are_exactly_the_escaped_bodies() -> None:
    """Pieces escaped once per campaign + values escaped per recipient == escaping the whole."""
    fields = {
        "first_name": 'Zoë "the \\ quote"\t\x01 \u2028 😀',
        "organisation": "</script>{{{x}}}",
    }
    message = personaliser(raw=False, json=True).message(
        R("pub1", "zoe@example.com", "Zoë", fields), "sid1"
    )
    assert message.json_bodies is not None
    html_json, text_json = message.json_bodies
    assert html_json == orjson.dumps(message.html) and text_json == orjson.dumps(message.text)
    assert personaliser(raw=False).message(R("pub1", "zoe@example.com"), "sid1").json_bodies is None


def test_a_100000_character_name_makes_a_bounded_to_line() -> None:
    from campaign.audience.models import MAX_NAME_LENGTH

    message = personaliser().message(R("pub1", "eve@example.com", "N" * 100_000), "sid1")
    assert message.to_name == "N" * MAX_NAME_LENGTH
    assert message.raw is not None
    head = message.raw.split(b"\r\n\r\n", 1)[0].decode()
    to = re.search(r"^To:.*?(?=\r\n\S)", head, re.MULTILINE | re.DOTALL)
    assert to is not None and len(to.group()) < 1000 and "eve@example.com" in to.group()
