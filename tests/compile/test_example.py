"""The example campaign builds, and its output holds what later stages rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign import placeholders
from campaign.cli import main
from campaign.compile import build, write_output
from campaign.config import load_config

SLUG = "2018-11-wsr-primer"


def test_example_builds_with_every_link_and_the_address(workspace: Path) -> None:
    config = load_config(workspace)
    compiled = build(config, SLUG)
    assert compiled.warnings == ()
    assert {f"link:{name}" for name in placeholders.LINKS} <= compiled.placeholders
    assert config.organisation.address in compiled.html
    assert "fonts.googleapis" not in compiled.html
    assert '<html lang="en"' in compiled.html
    assert '<meta name="color-scheme" content="light dark">' in compiled.html
    assert all(
        asset.url == f"{config.public_base_url}/assets/{asset.name}" for asset in compiled.assets
    )
    assert all(asset.url in compiled.html for asset in compiled.assets)


def test_cli_build_writes_html_text_and_assets(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["build", SLUG])
    assert exited.value.code == 0
    out = workspace / "site" / SLUG
    captured = capsys.readouterr()
    assert "HTML" in captured.out and " ms" in captured.out
    assert (out / "index.html").read_text().startswith("<!doctype html>")
    assert "unsubscribe from this list" in (out / "index.txt").read_text()
    assert len(list((out / "assets").iterdir())) == 7


def test_write_output_copies_fingerprinted_assets(workspace: Path, tmp_path: Path) -> None:
    compiled = build(load_config(workspace), SLUG)
    write_output(compiled, tmp_path / "out")
    html = (tmp_path / "out" / "index.html").read_text()
    for asset in compiled.assets:
        assert (tmp_path / "out" / "assets" / asset.name).stat().st_size == asset.size
        assert f'src="assets/{asset.name}"' in html  # opened from disk, it shows its images
    assert "/assets/" not in html  # no public image URL left; the emails keep theirs
    assert f"{compiled.assets[0].url}" in compiled.html
