"""The build cache: an unchanged build is reused without the compiler, and a change to any
kind of input (a file read, a folder's files, a setting, the year, the code, the audience)
builds again and shows the change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.compile import build, cache, campaign_folder, pipeline
from campaign.compiled import Compiled
from campaign.config import Config, load_config
from campaign.errors import BuildError
from tests.compile.test_pipeline import write_campaign
from tests.conftest import own_layout, run_cli

EXAMPLE = "2018-11-wsr-primer"
COMPILER = ("mjml", "premailer", "markdown_it", "jinja2", "campaign.compile.pipeline")


class Counted:
    """How many builds ran the compiler (cache misses)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.misses = 0
        run = pipeline.Builder.run

        def counted(builder: pipeline.Builder, folder: Path) -> Compiled:
            self.misses += 1
            return run(builder, folder)

        monkeypatch.setattr(pipeline.Builder, "run", counted)

    def build(self, config: Config, ref: str = EXAMPLE) -> tuple[Compiled, bool]:
        """The build and whether it was a miss."""
        before = self.misses
        compiled = build(config, ref)
        return compiled, self.misses > before


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Counted:
    return Counted(monkeypatch)


def entry(config: Config, ref: str = EXAMPLE) -> Path:
    return cache.entry_path(config, campaign_folder(config, ref))


def test_an_unchanged_build_is_reused_whole(workspace: Path, builds: Counted) -> None:
    config = load_config(workspace)
    first, missed = builds.build(config)
    assert missed and entry(config).is_file()
    again, missed = builds.build(config)
    assert not missed
    assert again == first and again.warnings == first.warnings


def test_each_file_read_is_an_input(workspace: Path, builds: Counted) -> None:
    config = load_config(workspace)
    folder = workspace / "campaigns" / EXAMPLE
    builds.build(config)

    yaml_file = folder / "campaign.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("A Primer on", "A Guide to"))
    compiled, missed = builds.build(config)
    assert missed and compiled.subject.startswith("A Guide to")

    markdown = folder / "spotlight.md"  # same size: only the content tells
    text = markdown.read_text()
    markdown.write_text(text.replace("Worker", "Wrkers", 1))
    compiled, missed = builds.build(config)
    assert missed and "Wrkers" in compiled.html

    image = folder / "images" / "banner.png"
    old_names = {a.name for a in compiled.assets}
    shutil.copy(folder / "images" / "footer.png", image)
    compiled, missed = builds.build(config)
    assert missed and {a.name for a in compiled.assets} != old_names
    assert builds.build(config)[1] is False


def test_a_file_changed_within_the_same_clock_tick_is_seen(
    workspace: Path, builds: Counted
) -> None:
    """File times are coarse: a same-sized edit may keep the mtime the cache saw."""
    config = load_config(workspace)
    markdown = workspace / "campaigns" / EXAMPLE / "spotlight.md"
    markdown.write_text(markdown.read_text())  # just edited: mtime close to the build
    builds.build(config)
    stat = markdown.stat()
    markdown.write_text(markdown.read_text().replace("Worker", "Wrkers", 1))
    os.utime(markdown, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert markdown.stat().st_size == stat.st_size
    compiled, missed = builds.build(config)
    assert missed and "Wrkers" in compiled.html


def test_a_copy_keeping_size_and_mtime_is_seen(
    workspace: Path, builds: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cp -p` of a same-sized file sets the old mtime back; the ctime it cannot."""
    monkeypatch.setattr(cache, "RACY_NS", 0)  # the file's times are all before the build
    config = load_config(workspace)
    markdown = workspace / "campaigns" / EXAMPLE / "spotlight.md"
    old = (markdown.stat().st_atime_ns, markdown.stat().st_mtime_ns - 10**10)
    os.utime(markdown, ns=old)
    builds.build(config)
    markdown.write_text(markdown.read_text().replace("Worker", "Wrkers", 1))
    os.utime(markdown, ns=old)
    compiled, missed = builds.build(config)
    assert missed and "Wrkers" in compiled.html


def test_the_layout_is_an_input_built_in_or_overridden(workspace: Path, builds: Counted) -> None:
    config = load_config(workspace)
    builds.build(config)
    layout = own_layout(workspace)  # the workspace's layouts/newsletter/ appears
    template = layout / "layout.mjml.j2"
    template.write_text(template.read_text().replace("All rights reserved.", "Some rights kept."))
    compiled, missed = builds.build(config)
    assert missed and "Some rights kept." in compiled.html

    template.write_text(template.read_text().replace("Some rights kept.", "Few rights kept."))
    compiled, missed = builds.build(config)
    assert missed and "Few rights kept." in compiled.html

    shutil.rmtree(layout)  # back to the built-in layout
    compiled, missed = builds.build(config)
    assert missed and "All rights reserved." in compiled.html


def test_a_file_a_template_includes_is_an_input(workspace: Path, builds: Counted) -> None:
    config = load_config(workspace)
    layout = own_layout(workspace)
    template = layout / "layout.mjml.j2"
    template.write_text(
        template.read_text().replace(
            "  </mj-head>", '    <mj-style>{% include "extra.css" %}</mj-style>\n  </mj-head>'
        )
    )
    (layout / "extra.css").write_text(".extra-one { color: red; }\n")
    compiled, _ = builds.build(config)
    assert ".extra-one" in compiled.html
    (layout / "extra.css").write_text(".extra-two { color: red; }\n")
    compiled, missed = builds.build(config)
    assert missed and ".extra-two" in compiled.html


def test_a_partial_added_or_changed_is_an_input(workspace: Path, builds: Counted) -> None:
    config = load_config(workspace)
    layout = own_layout(workspace)
    builds.build(config)
    partial = layout / "partials" / "spotlight.mjml.j2"  # overrides the block library's
    partial.parent.mkdir(exist_ok=True)
    partial.write_text(
        "<mj-section><mj-column><mj-text>Own spotlight</mj-text></mj-column></mj-section>\n"
    )
    compiled, missed = builds.build(config)
    assert missed and "Own spotlight" in compiled.html

    partial.write_text(partial.read_text().replace("Own", "Mine"))
    compiled, missed = builds.build(config)
    assert missed and "Mine spotlight" in compiled.html


def test_a_new_file_in_the_campaign_folder_is_a_miss(workspace: Path, builds: Counted) -> None:
    config = load_config(workspace)
    builds.build(config)
    (workspace / "campaigns" / EXAMPLE / "notes.md").write_text("Draft.\n")
    assert builds.build(config)[1] is True
    assert builds.build(config)[1] is False


def test_the_settings_are_an_input(workspace: Path, builds: Counted) -> None:
    builds.build(load_config(workspace))
    toml = workspace / "campaign.toml"
    toml.write_text(
        toml.read_text().replace(
            'name = "Colorado Human Trafficking Council"', 'name = "Front Range Council"'
        )
    )
    compiled, missed = builds.build(load_config(workspace))
    assert missed and "Front Range Council" in compiled.html


def test_the_year_is_an_input_of_a_campaign_without_a_date(
    workspace: Path, builds: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = workspace / "campaigns" / EXAMPLE
    yaml_file = folder / "campaign.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("date: 2018-11-01\n", ""))
    config = load_config(workspace)
    compiled, _ = builds.build(config)
    assert f"Copyright © {date.today().year} " in compiled.html

    class NextYear(date):
        @classmethod
        def today(cls) -> NextYear:
            return cls(date.today().year + 1, 1, 1)

    monkeypatch.setattr(cache, "date", NextYear)
    monkeypatch.setattr(pipeline, "date", NextYear)
    compiled, missed = builds.build(config)
    assert missed and f"Copyright © {date.today().year + 1} " in compiled.html


def test_a_package_installed_or_upgraded_is_a_miss(
    workspace: Path, builds: Counted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another version of the compiler (here: mjml-python appearing) on sys.path."""
    config = load_config(workspace)
    builds.build(config)
    site = tmp_path / "site-packages"
    (site / "mjml_python-1.4.2.dist-info").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    cache.code.cache_clear()  # once per process: this test plays a new process
    try:
        assert builds.build(config)[1] is True
        assert builds.build(config)[1] is False
    finally:
        cache.code.cache_clear()


def test_the_audience_of_a_custom_merge_field_is_an_input(workspace: Path, builds: Counted) -> None:
    write_campaign(
        workspace,
        "cities",
        "subject: Cities\npreheader: p\nlayout: newsletter\nsections:\n"
        "  - kind: spotlight\n    title: Hi\n    body_file: body.md\n",
        {"body.md": "News from {{ city }}.\n"},
    )
    config = load_config(workspace)
    compiled, _ = builds.build(config, "cities")
    assert any("'city'" in w for w in compiled.warnings)
    assert builds.build(config, "cities")[1] is False

    csv = workspace / "people.csv"
    csv.write_text("email,first_name,city\nann@example.org,Ann,Lyon\n")
    import_csv(Store.open(config), csv, "newsletter")
    compiled, missed = builds.build(config, "cities")
    assert missed and not any("'city'" in w for w in compiled.warnings)


def test_a_build_with_errors_is_never_kept(workspace: Path) -> None:
    write_campaign(workspace, "broken", "subject: Broken\nlayout: nosuchlayout\nsections: []\n")
    config = load_config(workspace)
    with pytest.raises(BuildError):
        build(config, "broken")
    assert not entry(config, "broken").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # cut short
        lambda raw: b"",
        lambda raw: b"\x00\xff not json",
        lambda raw: json.dumps({"format": cache.FORMAT}).encode(),
        lambda raw: json.dumps([1, 2]).encode(),
    ],
)
def test_a_damaged_entry_is_a_miss(
    workspace: Path, builds: Counted, damage: Callable[[bytes], bytes]
) -> None:
    config = load_config(workspace)
    first, _ = builds.build(config)
    path = entry(config)
    path.write_bytes(damage(path.read_bytes()))
    compiled, missed = builds.build(config)
    assert missed and compiled.html == first.html
    assert builds.build(config)[1] is False  # rewritten whole


def test_a_reader_never_sees_half_an_entry(workspace: Path) -> None:
    """Entries are written to a temporary file and renamed: a build reading while another
    writes gets the old entry or the new one, never a miss from half a file."""
    config = load_config(workspace)
    folder = campaign_folder(config, EXAMPLE)
    builder = pipeline.Builder(config)
    compiled = builder.run(folder)
    cache.save(config, folder, compiled, builder.session)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            cache.save(config, folder, compiled, builder.session)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        reads = [cache.load(config, folder) for _ in range(200)]
    finally:
        stop.set()
        writer.join()
    assert all(read == compiled for read in reads)
    assert [p.name for p in entry(config).parent.iterdir()] == [entry(config).name]


def test_deleting_the_cache_is_safe(workspace: Path, builds: Counted) -> None:
    config = load_config(workspace)
    first, _ = builds.build(config)
    shutil.rmtree(workspace / ".campaign" / "cache")
    compiled, missed = builds.build(config)
    assert missed and compiled.html == first.html
    assert builds.build(config)[1] is False


def test_a_workspace_that_cannot_be_written_still_builds(workspace: Path, builds: Counted) -> None:
    (workspace / ".campaign").write_text("not a folder\n")
    config = load_config(workspace)
    assert builds.build(config)[1] is True
    assert builds.build(config)[1] is True


def test_the_preview_uses_the_same_cache(workspace: Path, builds: Counted) -> None:
    from campaign.web.preview.state import Preview

    config = load_config(workspace)
    first, _ = builds.build(config)
    preview = Preview(config, None)
    result = preview._build_now(EXAMPLE, campaign_folder(config, EXAMPLE))
    assert builds.misses == 1 and result.compiled == first


def test_campaign_build_warm_prints_the_same_and_loads_no_compiler(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warm `campaign build` as its own process: same output, warnings and exit code,
    and none of the compiler imported."""
    write_campaign(
        workspace,
        "warned",
        "subject: Warned\nlayout: newsletter\nsections:\n"
        "  - kind: spotlight\n    title: Hi\n    body: Hello.\n",
    )
    code, out, err = run_cli(capsys, "build", "warned")
    assert code == 0 and "no preheader" in err
    script = (
        "import sys\n"
        "from campaign.cli import main\n"
        "try:\n"
        "    main(['build', 'warned'])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code or 0\n"
        f"loaded = sorted(m for m in {COMPILER!r} if m in sys.modules)\n"
        "print('LOADED', code, loaded, file=sys.stderr)\n"
    )
    env = {**os.environ, "CAMPAIGN_WORKSPACE": str(workspace), "COLUMNS": "200"}
    warm = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=workspace
    )
    warnings, _, loaded = warm.stderr.rpartition("LOADED ")
    assert loaded.strip() == "0 []", warm.stderr
    assert warnings.strip() == err.strip()
    assert warm.stdout.split(", in ")[0] == out.split(", in ")[0]
