"""The block library, kinds declared in files, Markdown as people write it, hostile field
values, MJML checked before mjml, and built-in layouts that name no organisation."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from campaign.compile import build
from campaign.config import load_config
from tests.compile.test_checks import install, run
from tests.compile.test_pipeline import write_campaign
from tests.conftest import own_layout

SOCIAL = '\n[organisation.social]\nMastodon = "https://mastodon.example/@us"\n'
EXAMPLE_WORDS = (
    "Colorado",
    "Council",
    "Kipling",
    "Department of Public Safety",
    "Trafficking",
    "Denver",
    "CHTC",
    "banner.",
    "footer.",
    "Newsletter Footer Image",
)
OTHER_ORGANISATION = """public_base_url = "https://news.riverfriends.example"
[organisation]
name = "Friends of the River"
address = "4 Quay Road, Bristol BS1 4QA"
"""


def every_kind(workspace: Path) -> str:
    with (workspace / "campaign.toml").open("a") as toml:
        toml.write(SOCIAL)
    install(workspace, "every-kind")
    return "every-kind"


def test_every_kind_builds_with_the_built_in_layout(workspace: Path) -> None:
    slug = every_kind(workspace)
    compiled = build(load_config(workspace), slug)
    assert compiled.warnings == ()
    html = compiled.html
    for kind in ("hero", "text", "columns", "image", "quote", "table", "list", "divider"):
        assert f"section-{kind}" in html, kind
    for kind in ("spacer", "button", "social", "spotlight", "news", "events", "notice"):
        assert f"section-{kind}" in html, kind
    for label, url in (
        ("Join us", "https://example.org/join"),
        ("See the map", "https://example.org/map"),
        ("Donate now", "https://example.org/donate"),
    ):
        assert re.search(rf'<a href="{re.escape(url)}"[^>]*>\s*{label}\s*</a>', html), label
    assert "background:#0a7d38" in html.replace(" ", "")
    assert re.search(r'<a href="https://mastodon.example/@us"[^>]*>Mastodon</a>', html)
    for cell in (
        "<th[^>]*>Date</th>",
        "<td[^>]*>Planting</td>",
        "<th[^>]*>Month</th>",
        "<td[^>]*>57</td>",
    ):
        assert re.search(cell, html), cell
    assert '<ol class="block-list">' not in html and "<em>Water</em>" in html


def test_every_kind_builds_with_the_announcement_layout(workspace: Path) -> None:
    slug = every_kind(workspace)
    yaml_file = workspace / "campaigns" / slug / "campaign.yaml"
    yaml_file.write_text(
        yaml_file.read_text().replace("layout: newsletter", "layout: announcement")
    )
    compiled = build(load_config(workspace), slug)
    assert compiled.warnings == ()
    assert "section-columns" in compiled.html and "top-links" not in compiled.html


def test_markdown_tables_strikethrough_footnotes(workspace: Path) -> None:
    slug = every_kind(workspace)
    compiled = build(load_config(workspace), slug)
    assert "<s>old news</s>" in compiled.html or "<del>old news</del>" in compiled.html
    assert 'class="footnote-ref"' in compiled.html and "Footnotes are collected" in compiled.html
    assert re.search(r"<table[^>]*>\s*<thead>\s*<tr>\s*<th[^>]*>Date</th>", compiled.html)


def test_raw_html_in_markdown_is_text_unless_the_campaign_allows_it(workspace: Path) -> None:
    body = "Hello <b>bold</b>\n\n<div class=x>block</div>\n"
    yaml_text = "subject: s\npreheader: p\nlayout: newsletter\nsections:\n  - kind: text\n    text_file: body.md\n"
    write_campaign(workspace, "raw", yaml_text, {"body.md": body})
    compiled = build(load_config(workspace), "raw")
    assert "&lt;b&gt;bold&lt;/b&gt;" in compiled.html and "<b>bold</b>" not in compiled.html
    assert [w.split(": warning")[0] for w in compiled.warnings] == [
        "campaigns/raw/body.md:1",
        "campaigns/raw/body.md:3",
    ]
    (workspace / "campaigns/raw/campaign.yaml").write_text(yaml_text + "html_in_markdown: true\n")
    allowed = build(load_config(workspace), "raw")
    assert "<b>bold</b>" in allowed.html and allowed.warnings == ()


@pytest.mark.parametrize("layout", ["newsletter", "announcement"])
def test_built_in_layouts_name_no_organisation(
    workspace: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    """Issue 12: a new organisation's first build says nothing of the example's."""
    (workspace / "campaign.toml").write_text(OTHER_ORGANISATION)
    code, _, _ = run("new", "first", "--layout", layout, capsys=capsys)
    assert code == 0
    compiled = build(load_config(workspace), "first")
    assert compiled.warnings == ()
    assert "Friends of the River" in compiled.html and "4 Quay Road" in compiled.text
    for word in EXAMPLE_WORDS:
        assert word not in compiled.html and word not in compiled.text, word
    assert {a.source.split("/")[0] for a in compiled.assets} <= {"campaigns"}


def test_a_layout_adds_a_field_and_a_kind_without_python(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partials = own_layout(workspace) / "partials"
    partials.mkdir()
    (partials / "hero.yaml").write_text(
        "description: The library's hero with a kicker line.\n"
        "fields:\n  kicker: {type: text, required: true}\n  title: text\n  button: button\n"
    )
    (partials / "hero.mjml.j2").write_text(
        '<mj-section css-class="section section-hero"><mj-column>'
        '<mj-text css-class="kicker">{{ section.kicker }}</mj-text>'
        "<mj-text><h1>{{ section.title }}</h1></mj-text>"
        '{% with button = section.button %}{% include "partials/_button.mjml.j2" %}{% endwith %}'
        "</mj-column></mj-section>\n"
    )
    (partials / "gallery.yaml").write_text(
        "description: Photos in a row.\nfields:\n"
        "  photos:\n    type: list\n    min: 1\n    of: {image: image, caption: inline}\n"
    )
    (partials / "gallery.mjml.j2").write_text(
        '<mj-section css-class="section section-gallery">{% for p in section.photos %}'
        '<mj-column><mj-image src="{{ p.image.url }}" alt="{{ p.image.alt }}" />'
        "<mj-text>{{ p.caption }}</mj-text></mj-column>{% endfor %}</mj-section>\n"
    )
    folder = write_campaign(
        workspace,
        "custom",
        "subject: s\npreheader: p\nlayout: newsletter\nsections:\n"
        "  - kind: hero\n    kicker: New this spring\n    title: Hello\n"
        "    button: {label: Go, url: 'https://example.org/go'}\n"
        "  - kind: gallery\n    photos:\n      - image: a.png\n        alt: A photo\n"
        "        caption: By *us*\n",
    )
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n a")
    compiled = build(load_config(workspace), "custom")
    assert "New this spring" in compiled.html and "By <em>us</em>" in compiled.html
    assert 'alt="A photo"' in compiled.html

    code, out, _ = run("schema", capsys=capsys)
    schema = json.loads(out)
    gallery = schema["$defs"]["GallerySection"]
    assert gallery["properties"]["kind"]["const"] == "gallery"
    heroes = [
        d
        for d in schema["$defs"].values()
        if d["properties"].get("kind", {}).get("const") == "hero"
    ]
    assert len(heroes) == 2 and any("kicker" in d["properties"] for d in heroes)

    text = (folder / "campaign.yaml").read_text()
    (folder / "campaign.yaml").write_text(text.replace("    caption:", "    captoin:"))
    code, _, err = run("build", "custom", capsys=capsys)
    assert code == 1
    assert (
        "campaigns/custom/campaign.yaml:13: error: unknown field 'captoin' in sections[1].photos[0]"
        " (gallery; known fields: image, alt, caption)" in err
    )
    (folder / "campaign.yaml").write_text(text.replace("    kicker: New this spring\n", ""))
    code, _, err = run("build", "custom", capsys=capsys)
    assert (
        "campaigns/custom/campaign.yaml:5: error: missing field 'kicker' in sections[0] (hero)"
        in err
    )


def test_a_schema_file_with_a_wrong_type_names_its_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partials = own_layout(workspace) / "partials"
    partials.mkdir()
    (partials / "text.yaml").write_text("fields:\n  title: txt\n")
    code, _, err = run("build", "2018-11-wsr-primer", capsys=capsys)
    assert code == 1 and "layouts/newsletter/partials/text.yaml:2: error:" in err


class Elements(HTMLParser):
    """Every element of an HTML page with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


HOSTILE = '"><meta http-equiv="refresh" content="0;url=https://evil.example/">'


def test_hostile_values_stay_inside_their_attributes(workspace: Path) -> None:
    """Issue 15: alt texts, titles and labels with quotes never leave their attribute after mjml."""
    folder = write_campaign(
        workspace,
        "hostile",
        "subject: s\npreheader: 'p \"><b>x</b>'\nlayout: newsletter\nsections:\n"
        f"  - kind: image\n    image: a.png\n    alt: '{HOSTILE}'\n"
        f"    caption: '{HOSTILE}'\n"
        f"  - kind: button\n    label: '{HOSTILE}'\n    url: https://example.org/?a=1&b=2\n"
        f"  - kind: hero\n    title: '{HOSTILE}'\n",
    )
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n a")
    compiled = build(load_config(workspace), "hostile")
    elements = Elements()
    elements.feed(compiled.html)
    assert not [
        a for tag, a in elements.found if tag == "meta" and a.get("http-equiv") == "refresh"
    ]
    assert [a["alt"] for tag, a in elements.found if tag == "img"] == [HOSTILE]
    assert 'href="https://example.org/?a=1&amp;b=2"' in compiled.html
    assert "<b>x</b>" not in compiled.html


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lang", 'en" onload="x', "lang: String should match pattern"),
        ("banner", "{image: a.png, alt: A, link: 'javascript:alert(1)'}", "is not a link"),
        ("banner", "{image: a.png, alt: A, link: 'https://a.example/\"x'}", "holds a space, quote"),
    ],
)
def test_hostile_campaign_fields_are_errors_at_their_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], field: str, value: str, message: str
) -> None:
    folder = write_campaign(
        workspace, "bad", f"subject: s\npreheader: p\nlayout: newsletter\n{field}: {value}\n"
    )
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n a")
    code, _, err = run("build", "bad", capsys=capsys)
    assert code == 1
    assert "campaigns/bad/campaign.yaml:4: error:" in err and message in err


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("  - kind: button\n    label: Go\n    url: javascript:alert(1)\n", 7, "is not a link"),
        ("  - kind: button\n    label: Go\n    url: 'ftp://x.example/'\n", 7, "is not a link"),
        ("  - kind: columns\n    items: [{title: a}]\n", 6, "at least 2 items"),
        (
            "  - kind: text\n    text: '[x](ftp://x.example/f)'\n",
            6,
            "is not a web, mail or phone link",
        ),
        (
            "  - kind: button\n    label: Go\n    url: https://a.example\n    colour: 'red;x'\n",
            8,
            "is not a colour",
        ),
    ],
)
def test_bad_block_values_are_errors_at_their_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], section: str, line: int, message: str
) -> None:
    write_campaign(
        workspace, "bad", f"subject: s\npreheader: p\nlayout: newsletter\nsections:\n{section}"
    )
    code, _, err = run("build", "bad", capsys=capsys)
    assert code == 1
    assert f"campaigns/bad/campaign.yaml:{line}: error:" in err and message in err


def layout_with(workspace: Path, body: str, head: str = "") -> None:
    folder = workspace / "layouts" / "raw"
    folder.mkdir(parents=True)
    (folder / "layout.mjml.j2").write_text(
        "<mjml>\n  <mj-head>\n"
        + head
        + "  </mj-head>\n  <mj-body>\n"
        + body
        + "    <mj-section><mj-column><mj-text>{{ organisation.address }}"
        " <a href=\"{{ link('unsubscribe') }}\">u</a></mj-text></mj-column></mj-section>\n"
        "  </mj-body>\n</mjml>\n"
    )
    write_campaign(workspace, "raw", "subject: s\npreheader: p\nlayout: raw\n")


def test_mjml_failure_names_the_element_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MRML cannot read a CDATA section in an mj-text: the error is at that mj-text's line,
    from the byte offset MRML names."""
    layout_with(
        workspace,
        "    <mj-section><mj-column>\n      <mj-text>a</mj-text>\n"
        "      <mj-text>b <![CDATA[c]]></mj-text>\n"
        "    </mj-column></mj-section>\n",
    )
    code, _, err = run("build", "raw", capsys=capsys)
    assert code == 1
    assert (
        "layouts/raw/layout.mjml.j2:7: error: mjml failed on <mj-text> (MjmlError: unexpected token"
        in err
    )


def test_mjml_checks_unknown_attributes_and_wrong_parents(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout_with(
        workspace,
        '    <mj-section><mj-column><mj-text colr="red">x</mj-text></mj-column></mj-section>\n'
        "    <mj-column><mj-text>y</mj-text></mj-column>\n",
    )
    code, _, err = run("build", "raw", capsys=capsys)
    assert code == 1
    assert (
        "layouts/raw/layout.mjml.j2:5: warning: <mj-text> has no attribute 'colr': mjml ignores it"
        in err
    )
    assert "layouts/raw/layout.mjml.j2:6: error: <mj-column> cannot be inside <mj-body>" in err


def test_mj_style_inline_is_inlined_by_our_premailer_step(workspace: Path) -> None:
    layout_with(
        workspace,
        '    <mj-section><mj-column><mj-text css-class="x"><p class="loud">x</p></mj-text>'
        "</mj-column></mj-section>\n",
        head='    <mj-style inline="inline">.loud { color: #b00020; }</mj-style>\n',
    )
    compiled = build(load_config(workspace), "raw")
    assert re.search(r'<p class="loud" style="[^"]*color:\s*#b00020', compiled.html)


def test_the_preheader_is_hidden_without_a_low_contrast_colour(workspace: Path) -> None:
    compiled = build(load_config(workspace), "2018-11-wsr-primer")
    hidden = re.search(r'<div class="preheader" style="([^"]*)"', compiled.html)
    assert hidden and "display:none" in hidden.group(1).replace(" ", "")
    assert "color" not in hidden.group(1)
