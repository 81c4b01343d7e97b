"""CSV import on SQLite and PostgreSQL: hostile rows, spreadsheet formats, never resubscribing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaign.audience import Store
from campaign.audience.export import export_csv
from campaign.audience.importer import import_csv, snake_case
from campaign.audience.tables import events, lists, subscribers
from campaign.db import connect
from campaign.errors import ImportFileError

LONG = "a" * 288 + "@example.org"  # 300 characters


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(connect(db_url))


def write(tmp_path: Path, text: str | bytes, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def table_counts(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (subscribers, events, lists)
        )


HOSTILE = (
    "email,first_name,last_name,note\r\n"  # line 1
    '"quote@example.org","Jo ""JJ""",Smith,"has, commas"\r\n'  # 2
    'crlf@example.org,Ann,"Multi\r\nLine","one\r\ntwo"\r\n'  # 3-5
    "script@example.org,<script>alert(1)</script>,X,\r\n"  # 6
    f"{LONG},Long,Address,\r\n"  # 7
    "Case@Example.org,Case,One,\r\n"  # 8
    "case@example.ORG,Case,Two,\r\n"  # 9
    "\r\n"  # 10
    "too@example.org,Too,Many,cols,extra\r\n"  # 11
    "trailing@example.org,Trail,Ing,,,\r\n"  # 12: empty extra cells are fine
    "short@example.org\r\n"  # 13: missing cells are empty
    ",No,Address,\r\n"  # 14
    "not-an-address,Bad,,\r\n"  # 15
    "after@example.org,After,All,last row\r\n"  # 16
)


def test_hostile_rows_imported_or_reported_with_their_lines(store: Store, tmp_path: Path) -> None:
    report = import_csv(store, write(tmp_path, HOSTILE), "news")
    imported = {r.email: r for r in store.recipients("news")}
    assert sorted(imported) == sorted(
        [
            "quote@example.org",
            "crlf@example.org",
            "script@example.org",
            "case@example.org",
            "trailing@example.org",
            "short@example.org",
            "after@example.org",
        ]
    )
    assert report.added == 7
    assert [line for line, _ in report.invalid] == [7, 11, 14, 15]
    assert "too long" in report.invalid[0][1] and "5 values" in report.invalid[1][1]
    assert report.invalid[2][1] == "no email address"
    assert report.duplicates == [(9, "case@example.org")]
    quote = imported["quote@example.org"]
    assert quote.fields["first_name"] == 'Jo "JJ"' and quote.fields["note"] == "has, commas"
    crlf = imported["crlf@example.org"]
    assert crlf.name == "Ann Multi Line" and "\r" not in crlf.fields["last_name"]
    assert crlf.fields["note"] == "one\ntwo"
    assert imported["script@example.org"].fields["first_name"] == "<script>alert(1)</script>"
    assert imported["case@example.org"].fields["last_name"] == "One"
    assert imported["after@example.org"].fields["note"] == "last row"


def test_same_import_twice_changes_nothing(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, HOSTILE)
    import_csv(store, path, "news", ["events"])
    before = [(s.public_id, s.updated_at, s.fields, s.topics) for s in store.subscribers()]
    counts = table_counts(store)
    again = import_csv(store, path, "news", ["events"])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 7)
    assert [(s.public_id, s.updated_at, s.fields, s.topics) for s in store.subscribers()] == before
    assert table_counts(store) == counts


def test_changed_rows_update_and_empty_cells_keep_values(store: Store, tmp_path: Path) -> None:
    import_csv(
        store, write(tmp_path, "email,first_name,city\njane@example.org,Jane,Denver\n"), "news"
    )
    report = import_csv(
        store,
        write(tmp_path, "email,first_name,city,team\njane@example.org,,Boulder,blue\n", "v2.csv"),
        "news",
    )
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    jane = store.find("jane@example.org")
    assert (
        jane is not None
        and jane.first_name == "Jane"
        and jane.fields == {"city": "Boulder", "team": "blue"}
    )


def test_semicolons_bom_and_mailchimp_headers(store: Store, tmp_path: Path) -> None:
    text = (
        "Email Address;First Name;Last Name;Favourite Colour;Prénom\r\n"
        'ana@example.org;Ana;López;"red; mostly";Ana\r\n'
    )
    report = import_csv(store, write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8")), "news")
    assert report.added == 1 and report.merge_fields == ["favourite_colour", "prenom"]
    ana = next(store.recipients("news"))
    assert ana.name == "Ana López" and ana.fields["favourite_colour"] == "red; mostly"


def test_name_column(store: Store, tmp_path: Path) -> None:
    import_csv(store, write(tmp_path, "NAME,E-mail\nDr. Jane Doe,jane@example.org\n"), "news")
    jane = next(store.recipients("news"))
    assert jane.name == "Dr. Jane Doe" and jane.fields["first_name"] == ""


def test_no_email_column_refused_and_nothing_written(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "name,phone\nJane,123\n")
    with pytest.raises(ImportFileError, match="no email column") as info:
        import_csv(store, path, "news")
    assert str(path) in str(info.value) and ":1:" in str(info.value)
    assert table_counts(store) == (0, 0, 0)


def test_undecodable_bytes_refused_naming_the_line(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, b"email,name\r\nok@example.org,Ok\r\nbad@example.org,Mu\xf1oz\r\n")
    with pytest.raises(ImportFileError) as info:
        import_csv(store, path, "news")
    assert f"{path}:3:" in str(info.value) and "UTF-8" in str(info.value)
    assert table_counts(store) == (0, 0, 0)


def test_unclosed_quote_refused_rather_than_swallowing_rows(store: Store, tmp_path: Path) -> None:
    text = 'email,name\na@example.org,"Jane\nb@example.org,Bob\nc@example.org,Carl\n'
    with pytest.raises(ImportFileError, match="never closed") as info:
        import_csv(store, write(tmp_path, text), "news")
    assert ":2:" in str(info.value)
    assert table_counts(store) == (0, 0, 0)
    closed = 'email,name\na@example.org,"Jane\nDoe"\nb@example.org,Bob ""B"" x\n'
    assert import_csv(store, write(tmp_path, closed, "ok.csv"), "news").added == 2


def test_empty_file_refused_header_only_imports_nothing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="empty"):
        import_csv(store, write(tmp_path, ""), "news")
    assert import_csv(store, write(tmp_path, "email\n", "h.csv"), "news").added == 0


def test_never_resubscribes_without_a_reason(store: Store, tmp_path: Path) -> None:
    people = ["unsub", "bounced", "complained", "deleted", "left", "suppressed"]
    path = write(tmp_path, "email\n" + "".join(f"{p}@example.org\n" for p in people))
    import_csv(store, path, "news")
    store.unsubscribe("unsub@example.org", source="web")
    store.record_bounce("bounced@example.org", hard=True, source="ses")
    store.record_complaint("complained@example.org", source="ses")
    store.delete("deleted@example.org")
    store.unsubscribe("left@example.org", source="web", list_name="news")
    store.unsubscribe("suppressed@example.org", source="mailto")
    store.unsubscribe("stranger@example.org", source="mailto")
    path = write(
        tmp_path,
        "email\n" + "".join(f"{p}@example.org\n" for p in [*people, "stranger"]),
        "again.csv",
    )
    report = import_csv(store, path, "news")
    assert [line for line, _ in report.suppressed_skipped] == list(range(2, 9))
    assert report.added == 0 and list(store.recipients("news")) == []


def test_resubscribe_with_reason_is_logged(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email\nunsub@example.org\nbounced@example.org\nnew@example.org\n")
    import_csv(
        store,
        write(tmp_path, "email\nunsub@example.org\nbounced@example.org\n", "first.csv"),
        "news",
    )
    store.unsubscribe("unsub@example.org", source="web")
    store.record_bounce("bounced@example.org", hard=True, source="ses")
    store.unsubscribe("new@example.org", source="mailto")
    report = import_csv(
        store, path, "news", resubscribe_reason="signed the paper form on 2024-05-01"
    )
    assert report.resubscribed == 3 and report.added == 1 and report.updated == 2
    assert store.count_recipients("news") == 3
    for email in ("unsub@example.org", "bounced@example.org", "new@example.org"):
        last = store.history(email)[-1]
        assert last["kind"] == "resubscribed" and "paper form" in last["detail"]
    with pytest.raises(ImportFileError, match="reason"):
        import_csv(store, path, "news", resubscribe_reason="  ")


def test_topics_and_a_second_list(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "email\na@example.org\nb@example.org\n")
    import_csv(store, path, "news", ["events"])
    report = import_csv(store, path, "alerts", ["events", "policy"])
    assert report.updated == 2
    assert store.lists() == [("alerts", 2), ("news", 2)]
    assert store.topics() == [("events", 2), ("policy", 2)]
    assert store.count_recipients("news", ["policy"]) == 2


def test_export_imports_back_the_same(store: Store, tmp_path: Path) -> None:
    import_csv(store, write(tmp_path, HOSTILE), "news", ["events"])
    out = tmp_path / "export.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        assert export_csv(store, handle, "news") == 7
    other = Store(connect(f"sqlite:///{tmp_path / 'other.db'}"))
    report = import_csv(other, out, "news")
    assert report.added == 7 and not report.invalid and "status" not in report.merge_fields
    assert [dict(r.fields) for r in other.recipients("news")] == [
        dict(r.fields) for r in store.recipients("news")
    ]


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Email Address", "email_address"),
        ("  Favourite  Colour ", "favourite_colour"),
        ("2nd Phone", "field_2nd_phone"),
        ("Prénom", "prenom"),
    ],
)
def test_snake_case(header: str, key: str) -> None:
    assert snake_case(header) == key
