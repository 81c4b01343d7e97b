"""Hostile CSV files on both databases: each problem a clear error with its row, quickly;
interrupted imports continue; exported cells never run in a spreadsheet."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaign.audience import Store, importer
from campaign.audience.export import export_csv
from campaign.audience.importer import import_csv
from campaign.audience.models import MAX_FIELD_LENGTH, MAX_NAME_LENGTH
from campaign.audience.progress import import_progress
from campaign.audience.tables import subscribers
from campaign.db import connect
from campaign.errors import ImportFileError, UserError
from tests.audience.test_importer import write
from tests.conftest import run_cli


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(connect(db_url))


def refused(store: Store, path: Path, **options: str) -> str:
    started = time.monotonic()
    with pytest.raises(ImportFileError) as info:
        import_csv(store, path, "news", **options)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(subscribers)).scalar_one() == 0
    return str(info.value)


def test_a_nul_byte_names_its_line(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, b"email,name\na@example.org,A\nb@example.org,B\x00ob\n")
    assert (
        refused(store, path)
        == f"{path}:3: a NUL byte, which no text file holds: is this a spreadsheet file, not CSV?"
    )


def test_utf16_is_named(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email,name\na@example.org,A\n".encode("utf-16"))
    assert "it looks like UTF-16" in refused(store, path)


def test_a_cp1252_file_from_excel_is_named_and_can_be_read(store: Store, tmp_path: Path) -> None:
    text = "email,first_name,city\n" + "".join(
        f"p{i}@example.org,Ren\u00e9e,Z\u00fcrich \u2013 Nord\n" for i in range(20)
    )
    path = write(tmp_path, text.encode("cp1252"))
    message = refused(store, path)
    assert message.startswith(f'{path}:2: byte 0xe9 is not UTF-8; save the file as "CSV UTF-8"')
    assert "--encoding cp1252" in message
    report = import_csv(store, path, "news", encoding="cp1252")
    assert report.added == 20
    assert store.find("p1@example.org").first_name == "Ren\u00e9e"  # type: ignore[union-attr]


def test_an_unknown_encoding(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email\na@example.org\n")
    assert "unknown encoding 'klingon'" in refused(store, path, encoding="klingon")


def test_repeated_column_names_are_named_and_quick(store: Store, tmp_path: Path) -> None:
    header = ",".join(["email"] + ["city"] * 20_000 + ["Zip", "zip"])
    path = write(tmp_path, header + "\na@example.org\n")
    message = refused(store, path)
    assert message.startswith(f"{path}:1: repeated column names ('city' again in column 3, 4, 5")
    assert "'zip' again in column 20003" in message


def test_a_huge_distinct_header_is_linear(store: Store, tmp_path: Path) -> None:
    header = ",".join(["email"] + [f"c{i}" for i in range(20_000)])
    path = write(tmp_path, header + "\na@example.org," + ",".join(["v"] * 20_000) + "\n")
    started = time.monotonic()
    assert import_csv(store, path, "news").added == 1
    assert time.monotonic() - started < 10


def test_overlong_names_and_values_are_refused_at_their_row(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "email,name,note\n"
        f"a@example.org,{'n' * 100_000},x\n"
        f"b@example.org,B,{'v' * (MAX_FIELD_LENGTH + 1)}\n"
        "c@example.org,C,fine\n",
    )
    report = import_csv(store, path, "news")
    assert report.added == 1
    assert report.invalid == [
        (2, f"name is 100,000 characters long; at most {MAX_NAME_LENGTH} fit"),
        (3, f"note is {MAX_FIELD_LENGTH + 1:,} characters long; at most {MAX_FIELD_LENGTH:,} fit"),
    ]
    with pytest.raises(UserError, match="first_name is 100,000 characters long"):
        store.subscribe("d@example.org", list_name="news", source="t", first_name="f" * 100_000)


def test_an_interrupted_import_continues_and_reports_the_whole(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.subscribe("p3@example.org", list_name="news", source="t")
    store.unsubscribe("p3@example.org", source="t")
    path = write(tmp_path, "email\n" + "".join(f"p{i}@example.org\n" for i in range(50)))
    monkeypatch.setattr(importer, "CHUNK", 10)
    real = importer._Writer.write
    calls = 0

    def crash_on_the_third(self: importer._Writer, rows: list[importer.Row]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        real(self, rows)

    monkeypatch.setattr(importer._Writer, "write", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        import_csv(store, path, "news")
    with store.engine.connect() as connection:
        assert connection.execute(select(import_progress.c.rows_done)).scalar_one() == 20
    monkeypatch.setattr(importer._Writer, "write", real)
    report = import_csv(store, path, "news")
    assert (report.added, report.unchanged) == (49, 0)
    assert report.suppressed_skipped == [(5, "p3@example.org")]
    with store.engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(import_progress)).scalar_one() == 0
        )
    again = import_csv(store, path, "news")
    assert (again.added, again.unchanged) == (0, 49)


def test_export_makes_formula_cells_inert_and_import_reads_them_back(
    store: Store, tmp_path: Path
) -> None:
    hostile = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", '=HYPERLINK("http://x")']
    rows = "".join(
        f'p{i}@example.org,"{v.replace(chr(34), chr(34) * 2)}"\n' for i, v in enumerate(hostile)
    )
    import_csv(store, write(tmp_path, "email,note\n" + rows), "news")
    out = io.StringIO()
    export_csv(store, out)
    text = out.getvalue()
    assert "'=cmd" in text and "'+1+1" in text and "'-2+3" in text and "'@SUM" in text
    assert "\n=" not in text and ",=" not in text and ',"=' not in text
    back = tmp_path / "back.csv"
    back.write_text(text)
    assert import_csv(store, back, "news").unchanged == len(hostile)


def test_the_cli_offers_encoding(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workspace / "people.csv"
    path.write_bytes("email,first_name\nrene@example.org,Ren\u00e9\n".encode("cp1252"))
    code, _, err = run_cli(capsys, "subscribers", "import", str(path), "--list", "news")
    assert code == 1 and "--encoding" in err and "Traceback" not in err
    code, out, _ = run_cli(
        capsys, "subscribers", "import", str(path), "--list", "news", "--encoding", "cp1252"
    )
    assert code == 0 and "1 added" in " ".join(out.split())
