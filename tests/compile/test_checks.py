"""Each build check, on a broken campaign from fixtures/: the message names the file and
line, the exit code is 1, and there is never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campaign.cli import main
from campaign.compile import build
from campaign.compile.checks import MAX_HTML_BYTES, WARN_HTML_BYTES
from campaign.config import load_config
from tests.conftest import own_layout

FIXTURES = Path(__file__).parent / "fixtures"


def install(workspace: Path, name: str) -> Path:
    """Copy fixture `name` into the workspace as campaigns/<name>; its layouts/ join the workspace's."""
    source = FIXTURES / name
    folder = workspace / "campaigns" / name
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("layouts"))
    if (source / "layouts").is_dir():
        shutil.copytree(source / "layouts", workspace / "layouts", dirs_exist_ok=True)
    return folder


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI; the exit code and its stdout and stderr with whitespace runs made single spaces."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    code = exited.value.code if isinstance(exited.value.code, int) else 1
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


def build_fixture(
    workspace: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    install(workspace, name)
    return run("build", name, capsys=capsys)


def test_yaml_syntax_error_names_file_and_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "yaml-syntax", capsys)
    assert code == 1
    assert "campaigns/yaml-syntax/campaign.yaml:7: error: YAML syntax error" in err


def test_unknown_field_is_named_with_the_known_ones(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "unknown-field", capsys)
    assert code == 1
    assert (
        "campaigns/unknown-field/campaign.yaml:7: error: unknown field 'colour' in sections[0]"
        in err
    )
    assert "known fields: kind, title, image, alt, body, body_file, items" in err


def test_missing_fields_are_each_named(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build_fixture(workspace, "missing-field", capsys)
    assert code == 1
    assert "campaigns/missing-field/campaign.yaml:1: error: missing field 'subject'" in err
    assert (
        "campaigns/missing-field/campaign.yaml:4: error: missing field 'kind' in sections[0]" in err
    )


def test_unknown_layout_lists_the_layouts(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "unknown-layout", capsys)
    assert code == 1
    assert "campaigns/unknown-layout/campaign.yaml:3: error: unknown layout 'magazine'" in err
    assert "layouts/magazine/layout.mjml.j2" in err and "newsletter" in err


def test_unknown_section_kind_names_the_missing_partial(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "unknown-kind", capsys)
    assert code == 1
    assert "campaigns/unknown-kind/campaign.yaml:7: error: unknown section kind 'gallery'" in err
    assert "layouts/newsletter/partials/gallery.mjml.j2" in err
    assert (
        "(kinds: button, columns, divider, events, hero, image, list, news, notice, quote,"
        " social, spacer, spotlight, table, text)" in err
    )


def test_a_new_kind_is_just_a_new_partial(workspace: Path) -> None:
    install(workspace, "unknown-kind")
    (own_layout(workspace) / "partials").mkdir()
    (workspace / "layouts/newsletter/partials/gallery.mjml.j2").write_text(
        '<mj-section css-class="section section-gallery"><mj-column>'
        "<mj-text>{{ section.title }}</mj-text></mj-column></mj-section>\n"
    )
    compiled = build(load_config(workspace), "unknown-kind")
    assert "No partial for this kind" in compiled.html and "section-gallery" in compiled.html


def test_missing_image_file(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build_fixture(workspace, "missing-image", capsys)
    assert code == 1
    assert (
        "campaigns/missing-image/campaign.yaml:8: error: image file not found: images/missing.png"
        in err
    )


def test_images_without_alt_text_in_yaml_and_markdown(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "image-without-alt", capsys)
    assert code == 1
    assert (
        "campaigns/image-without-alt/campaign.yaml:8: error: image images/photo.png has no alt text"
        in err
    )
    assert (
        "campaigns/image-without-alt/story.md:5: error: image images/photo.png has no alt text"
        in err
    )


def test_bad_merge_tag_in_markdown_names_its_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "bad-merge-tag", capsys)
    assert code == 1
    assert (
        "campaigns/bad-merge-tag/campaign.yaml:10: error: '{{ first name }}' is not a merge tag"
        in err
    )


def test_missing_preheader_is_a_warning(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = build_fixture(workspace, "no-preheader", capsys)
    assert code == 0
    assert "campaigns/no-preheader/campaign.yaml:1: warning: no preheader" in err
    assert "built no-preheader" in out


def _story_of_size(workspace: Path, html_bytes: int) -> None:
    """Write the too-big fixture's story so that its HTML is about `html_bytes` long."""
    story = workspace / "campaigns/too-big/story.md"
    base = len(build(load_config(workspace), "too-big").html.encode())
    story.write_text("word " * ((html_bytes - base) // 5))


def test_html_over_80_kb_is_a_warning(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(workspace, "too-big")
    _story_of_size(workspace, (WARN_HTML_BYTES + MAX_HTML_BYTES) // 2)
    code, _, err = run("build", "too-big", capsys=capsys)
    assert code == 0
    assert "layouts/newsletter/layout.mjml.j2: warning: the HTML is 9" in err
    assert "close to the 102 KB at which Gmail clips it" in err


def test_html_over_102_kb_is_an_error(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(workspace, "too-big")
    _story_of_size(workspace, MAX_HTML_BYTES + 2048)
    code, _, err = run("build", "too-big", capsys=capsys)
    assert code == 1
    assert "layouts/newsletter/layout.mjml.j2: error: the HTML is 10" in err
    assert "Gmail clips messages over 102 KB" in err


def test_jinja_error_names_the_layout_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "jinja-error", capsys)
    assert code == 1
    assert "layouts/jinja-error/layout.mjml.j2:5: error: UndefinedError in layout" in err
    assert "no_such_field" in err


def test_jinja_syntax_error_names_the_layout_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "jinja-syntax", capsys)
    assert code == 1
    assert "layouts/jinja-syntax/layout.mjml.j2:4: error: TemplateSyntaxError in layout" in err
    assert "endif" in err


def test_jinja_error_in_a_partial_names_the_partial(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(workspace, "no-preheader")
    (own_layout(workspace) / "partials").mkdir()
    partial = workspace / "layouts/newsletter/partials/notice.mjml.j2"
    partial.write_text("<mj-section>\n  <mj-column>{{ section.nope }}</mj-column>\n</mj-section>\n")
    code, _, err = run("build", "no-preheader", capsys=capsys)
    assert code == 1
    assert "layouts/newsletter/partials/notice.mjml.j2:2: error: UndefinedError in layout" in err


def test_mjml_crash_is_an_error_in_the_layout(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An mj-class with children crashes mjml 0.12 (AssertionError): caught before, at its line."""
    code, _, err = build_fixture(workspace, "mjml-crash", capsys)
    assert code == 1
    assert (
        "layouts/mjml-crash/layout.mjml.j2:4: error: an mj-class holds no elements"
        " (<mj-text> in mj-class 'fancy')" in err
    )


def test_mjml_unknown_tag_is_found_in_the_layout(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = build_fixture(workspace, "mjml-unknown-tag", capsys)
    assert code == 1
    assert (
        "layouts/mjml-unknown-tag/layout.mjml.j2:5: error: mjml does not know the tag <mj-textbox>"
        in err
    )


def test_missing_unsubscribe_link(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build_fixture(workspace, "no-unsubscribe", capsys)
    assert code == 1
    assert "layouts/no-unsubscribe/layout.mjml.j2: error: the email has no unsubscribe link" in err


def test_missing_postal_address(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = build_fixture(workspace, "no-address", capsys)
    assert code == 1
    assert (
        "layouts/no-address/layout.mjml.j2: error: the email does not show the organisation's postal address"
        in err
    )


def test_unknown_campaign(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("build", "no-such-campaign", capsys=capsys)
    assert code == 1
    assert "error: no campaign 'no-such-campaign'" in err
