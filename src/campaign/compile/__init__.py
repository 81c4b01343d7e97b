"""Compile a campaign, once: layout (Jinja2) -> MJML -> HTML (mjml) -> CSS inlined (premailer) -> text.

The result, `Compiled`, holds placeholder tokens where each recipient's links and
merge fields go; later stages only fill them in. Nothing per recipient runs
Jinja, mjml or premailer.

Every problem found is collected as a `Diagnostic` naming its file and line, so one
build reports all the mistakes it can see; any error ends in one `BuildError`.

This module is the light front door: a build whose inputs are unchanged since the
last one comes from the cache without importing the compiler.

    cache.py      the build cache in the workspace's .campaign/cache/
    inputs.py     what a build read, as the cache checks it
    pipeline.py   the build itself, on a cache miss
    session.py    the build's diagnostics, files read, folders listed and images used
    views.py      campaign + layout settings -> what the templates see
    markdown.py   Markdown -> HTML, merge tags -> placeholder tokens
    templates.py  the layout's Jinja templates, and the template line behind a problem
    html.py       MJML -> HTML -> inlined CSS -> text
    checks.py     the final checks, a pure function over the HTML
"""

from __future__ import annotations

from pathlib import Path

from campaign.compile import cache
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.errors import UserError


def campaign_folder(config: Config, ref: str | Path) -> Path:
    """The folder of a campaign given as a slug under campaigns/ or as a path."""
    as_path = Path(ref)
    for candidate in (config.campaigns_dir / as_path, as_path):
        if (candidate / "campaign.yaml").is_file():
            return candidate.resolve()
    if as_path.is_dir():
        return as_path.resolve()
    from campaign.load import shown_path

    raise UserError(
        f"no campaign {str(ref)!r}: neither {shown_path(config.campaigns_dir / as_path, config.workspace)}/ nor {ref}/ holds a campaign.yaml"
    )


def build(config: Config, ref: str | Path, *, use_cache: bool = True) -> Compiled:
    """Compile the campaign `ref` (a slug under campaigns/ or a folder), or reuse its last
    build if nothing it read has changed since (`use_cache=False`: compile regardless).

    Raises BuildError with every diagnostic when there is any error; warnings of a
    successful build are in `Compiled.warnings` as "file:line: warning: ..." strings.
    """
    folder = campaign_folder(config, ref)
    if use_cache and (reused := cache.load(config, folder)) is not None:
        return reused
    from campaign.compile.pipeline import Builder  # the compiler: only on a miss

    builder = Builder(config)
    compiled = builder.run(folder)
    if use_cache:
        cache.save(config, folder, compiled, builder.session)
    return compiled


def render_mjml(config: Config, ref: str | Path) -> str:
    """The MJML that `build` hands to mjml for campaign `ref`: to debug a layout, or to benchmark."""
    from campaign.compile.pipeline import Builder

    return Builder(config).mjml(campaign_folder(config, ref))[2]


def write_output(compiled: Compiled, out: Path) -> None:
    """Write out/index.html, out/index.txt and out/assets/<fingerprinted images>.

    index.html points at assets/ beside it, so the copy shows its images when opened
    from disk; the emails keep the public URLs (index.txt too: it is what they say)."""
    folder = out / "assets"
    folder.mkdir(parents=True, exist_ok=True)
    html = compiled.html
    for asset in compiled.assets:
        (folder / asset.name).write_bytes(asset.read())
        html = html.replace(asset.url, f"assets/{asset.name}")
    (out / "index.html").write_text(html, encoding="utf-8")
    (out / "index.txt").write_text(compiled.text, encoding="utf-8")


__all__ = ["build", "campaign_folder", "render_mjml", "write_output"]
