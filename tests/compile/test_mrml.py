"""MRML (mjml-python) where it differs from MJML, and the rewrites and checks that close
the gap: every expected value here is what the MJML CLI (mjml 4.18) writes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest

from campaign.compile.html import inline_css, mjml_to_html
from campaign.compile.mjml_check import MjmlError, after_mjml, before_mjml, check_mjml
from tests.compile.test_pipeline import compile_mjml


def column(content: str, section: str = "", column_attrs: str = "") -> str:
    return (
        '<mjml>\n  <mj-body width="600px">\n'
        f"    <mj-section{section}>\n      <mj-column{column_attrs}>\n"
        f"{content}\n      </mj-column>\n    </mj-section>\n  </mj-body>\n</mjml>\n"
    )


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def attributes(html: str, tag: str) -> list[dict[str, str | None]]:
    """The attributes, decoded as a browser reads them, of every `tag` in `html`."""
    parser = _Attributes()
    parser.feed(html)
    return [attrs for name, attrs in parser.found if name == tag]


GARBLED = "Zoë\u00a0Smith \\ e\u0301 👩\u200d💻 ❤\ufe0f a\tb"
"""A no-break space, a backslash, a combining accent, a ZWJ emoji, a variation selector, a
tab: MRML writes each of these in an attribute value as a Rust escape (`\\u{a0}`, `\\\\`)."""


def test_characters_mrml_garbles_reach_the_html_as_they_were() -> None:
    source = column(
        f'        <mj-image src="https://a.example/{GARBLED}.png" alt="{GARBLED}"'
        f' title="{GARBLED}" href="https://a.example/?q={GARBLED}" />\n'
        f'        <mj-text><a href="https://a.example/" title="{GARBLED}">x</a></mj-text>'
    )
    assert "\\u{a0}" in mjml_to_html(source)  # what MRML does alone
    html = inline_css(compile_mjml(source))
    image = attributes(html, "img")[0]
    assert (image["alt"], image["title"]) == (GARBLED, GARBLED)
    assert (
        unquote(image["src"] or "") == f"https://a.example/{GARBLED}.png"
    )  # premailer quotes URLs
    links = attributes(html, "a")
    assert [unquote(a["href"] or "") for a in links] == [
        f"https://a.example/?q={GARBLED}",
        "https://a.example/",
    ]
    assert links[1]["title"] == GARBLED
    assert "\\u{" not in html and "\\\\" not in html


def test_a_bare_zero_in_a_padding_shorthand_keeps_the_padding() -> None:
    """MRML reads `padding="0 24px"` as no padding: an image 48 px wider than MJML's."""
    source = column('        <mj-image src="https://a.example/a.png" alt="a" padding="0 24px" />')
    assert 'width="600"' in mjml_to_html(source)
    html = compile_mjml(source)
    assert attributes(html, "img")[0]["width"] == "552"
    assert re.search(r'<td[^>]*style="width:552px;"', html)


def test_images_are_whole_pixels_wide() -> None:
    """A 35% column of a 576-px section, less 24 px of padding: 177.6 px in MRML, 177 in MJML."""
    source = column(
        '        <mj-image src="https://a.example/a.png" alt="a" padding="0" />',
        section=' padding="8px 12px"',
        column_attrs=' width="35%" padding="8px 12px"',
    )
    assert 'width="177.6"' in mjml_to_html(source)
    html = compile_mjml(source)
    assert attributes(html, "img")[0]["width"] == "177"
    assert 'style="width:177px;"' in html
    assert "177.6" not in html


def test_unquoted_attribute_values_get_quotes() -> None:
    source = column("        <mj-text color=red><div class=box>b</div></mj-text>")
    with pytest.raises(MjmlError):
        mjml_to_html(source)
    html = compile_mjml(source)
    assert attributes(html, "div")[-1]["class"] == "box" and "color:red" in html


def test_control_characters_do_not_stop_mrml() -> None:
    """XML forbids them, so MRML cannot read them; they go through as references."""
    source = column("        <mj-text>a\x0cb</mj-text>")
    with pytest.raises(MjmlError):
        mjml_to_html(source)
    assert "a&#12;b" in compile_mjml(source)


def test_the_escapes_pass_through_mrml_untouched() -> None:
    """MRML writes entities back as it read them (mjml 0.12 decoded them), so no sentinel
    is needed: a quote in an alt text stays inside its attribute."""
    html = compile_mjml(
        column(
            '        <mj-image src="https://a.example/a.png" alt="&#34;q&#34; &amp; &lt;b&gt;" />'
        )
    )
    assert attributes(html, "img")[0]["alt"] == '"q" & <b>'
    assert before_mjml("&#34;&amp;") == "&#34;&amp;" and after_mjml("&#34;") == "&#34;"


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("        <mj-text>a\n        <mj-text>b</mj-text>", 5, "<mj-text> is not closed"),
        ("        </mj-hero>", 5, "</mj-hero> closes no open <mj-hero>"),
        (
            "        <mj-text><p>a</p><p>b</mj-text>",
            5,
            "<p> inside <mj-text> is not closed: mjml reads this HTML too and needs </p>",
        ),
        ("        <mj-text>a</b></mj-text>", 5, "</b> inside <mj-text> closes no open <b>"),
        ("        stray words", 4, "text inside <mj-column> ('stray words')"),
    ],
)
def test_what_mrml_cannot_read_is_found_at_its_line(content: str, line: int, message: str) -> None:
    problems = check_mjml(column(content))
    assert [(p.element.line, p.message) for p in problems if message in p.message] == [
        (line, problems[0].message)
    ]
    assert problems[0].level == "error" and message in problems[0].message


def test_mrml_failures_name_the_element_and_line_it_stopped_at() -> None:
    source = column("        <mj-text>a</mj-text>\n        <mj-text>é <![CDATA[c]]></mj-text>")
    assert check_mjml(source) == []
    with pytest.raises(MjmlError) as info:
        mjml_to_html(source)
    assert info.value.element is not None
    assert (info.value.element.tag, info.value.element.line) == ("mj-text", 6)
    assert "position" not in str(info.value)


def test_no_character_is_garbled_in_an_alt_text() -> None:
    """Every code point, through the build's MJML step in an alt text, comes out as it went
    in: the set of characters MRML garbles is complete for this version. (Left out: the
    controls and noncharacters, which Python's HTML parser drops where a browser keeps
    them, and the three characters that end an attribute or start a reference or tag.)"""
    allowed = [
        chr(c)
        for c in range(0x20, 0x110000)
        if not (0x7F <= c <= 0x9F or 0xD800 <= c <= 0xDFFF or 0xFDD0 <= c <= 0xFDEF)
        and c & 0xFFFE != 0xFFFE
        and chr(c) not in '"&<'
    ]
    for start in range(0, len(allowed), 20000):
        chunk = "".join(allowed[start : start + 20000])
        html = compile_mjml(column(f'        <mj-image src="a.png" alt="{chunk}" />'))
        assert attributes(html, "img")[0]["alt"] == chunk, f"from U+{ord(chunk[0]):04X}"
