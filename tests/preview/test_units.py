"""The preview's small decisions, no server: what a save rebuilds, dark mode, link rewriting."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from campaign.config import load_config
from campaign.web.preview import Preview, emulate_dark
from tests.conftest import own_layout
from tests.preview.conftest import EXAMPLE


def test_a_save_rebuilds_only_what_it_affects(workspace: Path) -> None:
    shutil.copytree(own_layout(workspace), workspace / "layouts" / "plain")
    other = workspace / "campaigns" / "2018-12-other"
    shutil.copytree(workspace / "campaigns" / EXAMPLE, other)
    yaml_file = other / "campaign.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("layout: newsletter", "layout: plain"))
    preview = Preview(load_config(workspace), None)

    async def build_both() -> None:
        await preview.build(EXAMPLE)
        await preview.build("2018-12-other")

    asyncio.run(build_both())
    layouts = workspace / "layouts"
    assert preview.affected({layouts / "newsletter" / "partials" / "news.mjml.j2"}) == {EXAMPLE}
    assert preview.affected({layouts / "plain" / "layout.mjml.j2"}) == {"2018-12-other"}
    assert preview.affected({other / "images" / "new.png"}) == {"2018-12-other"}
    assert preview.affected({workspace / "campaign.toml"}) == {EXAMPLE, "2018-12-other"}
    assert preview.affected({workspace / "README.md"}) == set()


def test_dark_mode_rewrites_the_emails_own_queries() -> None:
    html = (
        '<html><head><meta name="color-scheme" content="light dark"><style>'
        "@media (prefers-color-scheme: dark) { .a { color: white } }"
        "@media screen and (prefers-color-scheme:light) { .a { color: black } }"
        "</style></head><body></body></html>"
    )
    dark = emulate_dark(html)
    assert "@media (min-width: 0px) { .a { color: white } }" in dark
    assert "@media screen and (max-width: 0px) { .a { color: black } }" in dark
    assert "<style>:root{color-scheme:dark}</style></head>" in dark
    assert "color-scheme:dark" not in emulate_dark(
        html.replace('content="light dark"', 'content="light"')
    )


def test_only_the_public_pages_and_images_are_pointed_at_the_preview(workspace: Path) -> None:
    preview = Preview(load_config(workspace), None)
    build = asyncio.run(preview.build(EXAMPLE))
    public = preview.config.public_base_url
    text = (
        f"{public}/unsubscribe/abc {public}/archive/{EXAMPLE} {public}/assets/x1.png "
        f"{public}/about https://elsewhere.example/unsubscribe/abc"
    )
    here = "http://127.0.0.1:9"
    assert preview.for_browser(build, text, here) == (
        f"{here}/preview-pages/unsubscribe/abc {here}/preview-pages/archive/{EXAMPLE} "
        f"{here}/campaigns/{EXAMPLE}/assets/x1.png "
        f"{public}/about https://elsewhere.example/unsubscribe/abc"
    )
