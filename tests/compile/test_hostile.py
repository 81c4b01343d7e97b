"""Hostile campaign folders: each is a clear error at its file and line, never a traceback,
within seconds: YAML past its bounds, links of other schemes, images that are not images."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.compile.test_checks import run

HEAD = "subject: S\npreheader: P\nlayout: newsletter\n"
NOTICE = "sections:\n  - kind: notice\n    title: Hello\n"


def build(
    workspace: Path, yaml_text: str, capsys: pytest.CaptureFixture[str], **files: bytes
) -> str:
    """Build campaigns/h with this campaign.yaml (and `files`): its stderr, after exit code 1."""
    folder = workspace / "campaigns" / "h"
    folder.mkdir(parents=True)
    (folder / "campaign.yaml").write_text(yaml_text, encoding="utf-8")
    for name, data in files.items():
        (folder / name.replace("_", ".")).write_bytes(data)
    started = time.monotonic()
    code, _, err = run("build", "h", capsys=capsys)
    assert time.monotonic() - started < 10
    assert code == 1, err
    return err


WHERE = "campaigns/h/campaign.yaml"


def test_billion_laughs(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    err = build(workspace, "\n".join(lines) + "\n" + HEAD, capsys)
    assert f"{WHERE}:" in err and "YAML too large" in err


def test_aliases_that_expand_past_the_limit(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["a0: &a0 [" + ",".join(["x"] * 1000) + "]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 10)]
    err = build(workspace, "\n".join(lines) + "\n" + HEAD, capsys)
    assert "expand to more than 100,000 values" in err


def test_deep_nesting(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = build(workspace, HEAD + "title: " + "[" * 5000 + "]" * 5000 + "\n", capsys)
    assert f"{WHERE}:4: error: YAML too large: nested more than 40 levels deep" in err


def test_a_huge_file(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = build(workspace, HEAD + "title: " + "x" * 2_000_000 + "\n", capsys)
    assert f"{WHERE}: error: the file is 2,0" in err


def test_a_nul_character(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = build(workspace, HEAD + NOTICE + '    body_file: "a\\0b.md"\n', capsys)
    assert f"{WHERE}:7: error: a NUL character in a value" in err


def test_a_raw_nul_byte(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = build(workspace, HEAD + "title: a\x00b\n", capsys)
    assert f"{WHERE}:4: error: a NUL character" in err


def test_a_5000_character_layout_name(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = build(workspace, "subject: S\npreheader: P\nlayout: " + "x" * 5000 + "\n", capsys)
    assert f"{WHERE}:3: error: layout is 5,000 characters long" in err


def test_a_long_image_name(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = build(workspace, HEAD + NOTICE + f"    image: {'x' * 4000}.png\n    alt: A\n", capsys)
    assert f"{WHERE}:7: error: image is 4,004 characters long" in err


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        " JaVa\tscript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "vbscript:x",
    ],
)
def test_a_yaml_link_of_another_scheme(
    workspace: Path, capsys: pytest.CaptureFixture[str], link: str
) -> None:
    yaml_text = HEAD + "sections:\n  - kind: news\n    items:\n      - title: T\n"
    err = build(workspace, yaml_text + f"        link: {link!r}\n", capsys)
    assert f"{WHERE}:8: error:" in err and "use an https:, http:, mailto: or tel: URL" in err


def test_an_image_that_is_not_one(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_text = HEAD + NOTICE + "    image: photo.png\n    alt: A photo\n"
    err = build(workspace, yaml_text, capsys, photo_png=b"CAMPAIGN_SECRET_KEY=abc\n")
    assert f"{WHERE}:7: error: image photo.png is not a PNG, JPEG, GIF or WebP image" in err
