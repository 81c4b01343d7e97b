"""The pipeline's parts: placeholder tokens through mjml and premailer, premailer's options,
merge tags in Markdown, images, the source hash, and the new and schema commands."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import premailer
import pytest

from campaign import placeholders
from campaign.cli import main
from campaign.compile import build
from campaign.compile.html import inline_css, mjml_to_html, plain_text
from campaign.compile.mjml_check import after_mjml, before_mjml
from campaign.config import load_config
from campaign.placeholders import markdown_merge_tags
from tests.conftest import own_layout

TOKENS = [placeholders.link(name) for name in placeholders.LINKS] + [
    placeholders.field("first_name"),
    placeholders.field("Member_ID2"),
    placeholders.field("first_name", "dear friend, Zoë <b>&\"'</b> 🎉 ~~_*"),
]


def mjml_with(token: str) -> str:
    """MJML that puts `token` everywhere a layout might: hrefs, text, alt, title, preview."""
    return f"""<mjml lang="en"><mj-head>
      <mj-attributes><mj-all font-family="Arial, sans-serif" /></mj-attributes>
      <mj-preview>Preview {token}</mj-preview><mj-title>Title {token}</mj-title></mj-head>
      <mj-body><mj-section><mj-column>
        <mj-text><a href="{token}">text link</a> Hello {token}!</mj-text>
        <mj-button href="{token}">Button</mj-button>
        <mj-image src="https://example.org/a.png" alt="Alt {token}" href="{token}" />
      </mj-column></mj-section></mj-body></mjml>"""


def compile_mjml(source: str) -> str:
    """MJML -> HTML as the build does it, with the rewrites around MRML."""
    return after_mjml(mjml_to_html(before_mjml(source)))


@pytest.mark.parametrize("token", TOKENS)
def test_placeholders_survive_mjml_and_premailer_byte_for_byte(token: str) -> None:
    html = inline_css(compile_mjml(mjml_with(token)))
    assert html.count(f'href="{token}"') == 3
    assert f"Hello {token}!" in html
    assert f'alt="Alt {token}"' in html
    assert f"Preview {token}" in html
    assert {m.group(0) for m in placeholders.PATTERN.finditer(html)} == {token}


def test_why_tokens_hold_no_spaces() -> None:
    """premailer percent-encodes spaces inside href values: a token with spaces would not survive."""
    html = premailer.Premailer(
        '<a href="{{{ pm:unsubscribe }}}">u</a>', allow_network=False
    ).transform()
    assert "{{{%20pm:unsubscribe%20}}}" in html


def test_premailer_options_keep_the_responsive_rules() -> None:
    source = compile_mjml(mjml_with(TOKENS[0]).replace("<mj-column>", '<mj-column width="35%">'))
    html = inline_css(source)
    assert html.count("!important") == source.count("!important") > 0
    assert html.count("<style") == source.count("<style")
    assert "@media only screen and (min-width:480px)" in html
    assert html.startswith("<!doctype html>")
    # premailer's defaults would strip the !important that the @media rules need
    stripped = premailer.Premailer(
        source, allow_network=False, cssutils_logging_level="CRITICAL"
    ).transform()
    assert stripped.count("!important") < source.count("!important")


def test_markdown_merge_tags() -> None:
    assert markdown_merge_tags("Hi {{ first_name }}!") == "Hi {{{field:first_name}}}!"
    assert markdown_merge_tags("[Leave]({{unsubscribe_url}})") == "[Leave]({{{link:unsubscribe}}})"
    assert markdown_merge_tags("{{ view_url }} {{ forward_url }} {{ preferences_url }}") == (
        "{{{link:view}}} {{{link:forward}}} {{{link:preferences}}}"
    )
    with pytest.raises(ValueError, match="is not a merge tag"):
        markdown_merge_tags("{{ first name }}")


def write_campaign(
    workspace: Path, slug: str, yaml_text: str, files: dict[str, str] | None = None
) -> Path:
    folder = workspace / "campaigns" / slug
    folder.mkdir(parents=True)
    (folder / "campaign.yaml").write_text(yaml_text)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def test_merge_tags_in_markdown_reach_the_html_and_text(workspace: Path) -> None:
    write_campaign(
        workspace,
        "merge",
        (
            "subject: Merge\npreheader: p\nlayout: newsletter\nsections:\n"
            "  - kind: spotlight\n    title: Hello\n    body_file: body.md\n"
        ),
        {
            "body.md": "Dear {{ first_name }},\n\nYou may [leave]({{ unsubscribe_url }}) at any time.\n"
        },
    )
    compiled = build(load_config(workspace), "merge")
    assert "Dear {{{field:first_name}}}," in compiled.html
    assert '<a href="{{{link:unsubscribe}}}"' in compiled.html
    assert "field:first_name" in compiled.placeholders
    assert "Dear {{{field:first_name}}}," in compiled.text
    assert "[leave]({{{link:unsubscribe}}})" in compiled.text


def test_remote_images_are_left_alone_and_local_ones_fingerprinted(workspace: Path) -> None:
    folder = write_campaign(
        workspace,
        "images",
        (
            "subject: Images\npreheader: p\nlayout: newsletter\nsections:\n"
            "  - kind: news\n    items:\n"
            "      - image: https://cdn.example.com/photo.jpg\n        alt: Remote\n        text: A\n"
            "      - image: local.png\n        alt: Local\n        text: B\n"
        ),
    )
    (folder / "local.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    config = load_config(workspace)
    first = build(config, "images")
    assert 'src="https://cdn.example.com/photo.jpg"' in first.html
    local = next(a for a in first.assets if a.source == "campaigns/images/local.png")
    assert re.fullmatch(r"local\.[0-9a-f]{12}\.png", local.name)
    assert f'src="{config.public_base_url}/assets/{local.name}"' in first.html
    (folder / "local.png").write_bytes(b"\x89PNG\r\n\x1a\n changed")
    second = build(config, "images")
    assert local.name not in {a.name for a in second.assets}
    assert second.source_hash != first.source_hash


def test_source_hash_is_stable_and_follows_markdown(workspace: Path) -> None:
    config = load_config(workspace)
    first = build(config, "2018-11-wsr-primer")
    assert build(config, "2018-11-wsr-primer").source_hash == first.source_hash
    story = workspace / "campaigns/2018-11-wsr-primer/spotlight.md"
    story.write_text(story.read_text() + "\nOne more line.\n")
    assert build(config, "2018-11-wsr-primer").source_hash != first.source_hash


def test_send_at_without_zone_is_in_the_workspace_zone(workspace: Path) -> None:
    write_campaign(
        workspace,
        "later",
        ("subject: Later\npreheader: p\nlayout: newsletter\nsend_at: 2030-01-02 09:30:00\n"),
    )
    compiled = build(load_config(workspace), str(workspace / "campaigns" / "later"))
    assert compiled.send_at == datetime(2030, 1, 2, 9, 30, tzinfo=ZoneInfo("America/Denver"))
    assert compiled.from_ == "Colorado Human Trafficking Council <newsletter@news.example.org>"
    assert compiled.reply_to == "chtc@example.org"


def test_text_part_has_no_hidden_preheader_and_keeps_links(workspace: Path) -> None:
    compiled = build(load_config(workspace), "2018-11-wsr-primer")
    assert compiled.preheader and compiled.preheader not in compiled.text
    assert compiled.preheader in compiled.html
    assert "[unsubscribe from this list]({{{link:unsubscribe}}})" in compiled.text
    assert "\n\n\n" not in compiled.text
    assert plain_text("<p>a</p><p>b</p>") == "a\n\nb\n"


def test_new_scaffolds_a_campaign_that_builds(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["new", "2030-01-hello"])
    assert exited.value.code == 0
    text = (workspace / "campaigns/2030-01-hello/campaign.yaml").read_text()
    assert "layout: newsletter" in text and "$" not in text
    compiled = build(load_config(workspace), "2030-01-hello")
    assert compiled.warnings == ()
    assert "{{{field:first_name}}}" in compiled.html
    for args, message in (
        (["new", "2030-01-hello"], "campaigns/2030-01-hello already exists"),
        (["new", "Bad Slug"], "is not a campaign slug"),
        (["new", "x", "--layout", "magazine"], "unknown layout 'magazine'"),
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 1
        assert message in " ".join(capsys.readouterr().err.split())


def test_schema_describes_campaign_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schema"])
    assert exited.value.code == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "campaign.yaml"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"subject", "layout"}
    assert {"from", "reply_to", "preheader", "sections", "send_at"} <= set(schema["properties"])
    assert schema["$defs"]["Section"]["required"] == ["kind"]


def test_campaign_footer_and_banner_replace_the_layouts_field_by_field(workspace: Path) -> None:
    layout = own_layout(workspace)
    (layout / "images").mkdir()
    (layout / "images/footer.png").write_bytes(b"\x89PNG\r\n\x1a\n footer")
    (layout / "layout.yaml").write_text(
        "banner:\n  image: images/footer.png\n  alt: Layout banner\n"
        "footer:\n  image: images/footer.png\n  alt: Layout footer\n  disclaimer: Layout words.\n"
    )
    folder = write_campaign(
        workspace,
        "own-footer",
        (
            "subject: Own footer\npreheader: p\nlayout: newsletter\n"
            "banner:\n  image: top.png\n  alt: Our own banner\n"
            "footer:\n  disclaimer: Our *own* words.\n"
        ),
    )
    (folder / "top.png").write_bytes(b"\x89PNG\r\n\x1a\n banner")
    compiled = build(load_config(workspace), "own-footer")
    assert "Our <em>own</em> words." in compiled.html
    assert "Layout words" not in compiled.html and "not an endorsement" not in compiled.html
    assert 'alt="Our own banner"' in compiled.html and "Layout banner" not in compiled.html
    assert 'alt="Layout footer"' in compiled.html
    assert {a.source for a in compiled.assets} == {
        "campaigns/own-footer/top.png",
        "layouts/newsletter/images/footer.png",
    }


def test_layout_yaml_problems_name_the_layout_file(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = own_layout(workspace)
    (layout / "banner.png").write_bytes(b"\x89PNG\r\n\x1a\n banner")
    (layout / "layout.yaml").write_text("# shared\nbanner:\n  image: banner.png\n")
    (workspace / "campaigns/2018-11-wsr-primer/campaign.yaml").write_text(
        "subject: s\npreheader: p\nlayout: newsletter\n"
    )
    with pytest.raises(SystemExit) as exited:
        main(["build", "2018-11-wsr-primer"])
    assert exited.value.code == 1
    assert "layouts/newsletter/layout.yaml:3: error: image banner.png has no alt text" in " ".join(
        capsys.readouterr().err.split()
    )
