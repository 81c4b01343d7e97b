"""One address normalisation everywhere: an IDN domain in punycode or in Unicode is one person."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from starlette.datastructures import FormData

from campaign.audience import Store, addresses
from campaign.audience.importer import import_csv
from campaign.audience.models import email_hash
from campaign.db import connect
from campaign.web.public import read_forward_form
from campaign.web.webhooks import Event, record
from tests.conftest import run_cli

UNICODE = "juergen@exämple.org"
PUNYCODE = "juergen@xn--exmple-cua.org"


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(connect(db_url))


def test_one_form_for_both_spellings() -> None:
    assert addresses.normalise(PUNYCODE) == addresses.normalise(UNICODE) == UNICODE
    assert addresses.checked(" Juergen@XN--EXMPLE-CUA.ORG ") == UNICODE
    assert addresses.transport(UNICODE) == PUNYCODE
    assert addresses.needs_smtputf8("jürgen@example.org")
    assert not addresses.needs_smtputf8(UNICODE)
    with pytest.raises(addresses.InvalidAddress, match="SMTPUTF8"):
        addresses.transport("jürgen@example.org")
    for bad in ("nobody", "a@@example.org", "a@localhost", ""):
        assert not addresses.is_valid(bad)
        with pytest.raises(addresses.InvalidAddress):
            addresses.checked(bad)


@pytest.mark.parametrize(("stored", "given"), [(UNICODE, PUNYCODE), (PUNYCODE, UNICODE)])
def test_complaint_unsubscribe_and_delete_reach_the_other_spelling(
    store: Store, stored: str, given: str
) -> None:
    store.subscribe(stored, list_name="news", source="test")
    assert store.find(given) is not None
    store.unsubscribe(given, source="test", list_name="news")
    found = store.find(stored)
    assert found is not None and found.unsubscribed_lists == {"news"}
    store.record_complaint(given, source="test")
    found = store.find(stored)
    assert found is not None and found.status == "complained" and found.suppressed == "complained"
    assert store.delete(given, source="test")
    assert store.find(stored) is None
    assert [e["kind"] for e in store.history(stored)][-1] == "deleted"


def test_bounce_given_in_punycode_blocks_the_unicode_subscriber(store: Store) -> None:
    store.subscribe(UNICODE, list_name="news", source="test")
    store.record_bounce(PUNYCODE, hard=True, source="test")
    assert [r.email for r in store.recipients("news")] == []


def test_webhook_events_in_punycode_reach_the_subscriber(store: Store) -> None:
    store.subscribe(UNICODE, list_name="news", source="test")
    events = [
        Event("postmark", "e1", "complained", PUNYCODE),
        Event("postmark", "e2", "complained", "not an address"),
    ]
    assert record(store.engine, events, store).recorded == 1
    found = store.find(UNICODE)
    assert found is not None and found.status == "complained"


def test_delete_of_no_subscriber_erases_nothing(store: Store) -> None:
    assert not store.delete("nobody@example.org")
    store.subscribe(UNICODE, list_name="news", source="test")
    assert store.delete(PUNYCODE)


def test_import_warns_about_non_ascii_local_parts(store: Store, tmp_path: Path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text(f"email\n{PUNYCODE}\njürgen@example.org\n{UNICODE}\n", encoding="utf-8")
    report = import_csv(store, csv, "news")
    assert report.added == 2
    assert report.duplicates == [(4, UNICODE)]
    assert report.needs_smtputf8 == [(3, "jürgen@example.org")]
    assert sorted(r.email for r in store.recipients("news")) == [UNICODE, "jürgen@example.org"]


def test_forward_form_counts_both_spellings_once() -> None:
    form = read_forward_form(FormData([("friend", PUNYCODE), ("friend", UNICODE.upper())]))
    assert form.friends == [UNICODE] and form.errors == []
    assert read_forward_form(FormData([("friend", "a@localhost")])).errors


def test_cli_delete_says_erased_only_when_it_erased(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "one.csv").write_text(f"email\n{UNICODE}\njürgen@example.org\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "subscribers", "import", "one.csv", "--list", "news")
    assert code == 0 and "2 added" in out
    assert (
        "1 imported, but not ASCII before the @" in out and "one.csv:3: jürgen@example.org" in out
    )
    code, out, _ = run_cli(capsys, "subscribers", "show", PUNYCODE)
    assert code == 0 and UNICODE in out
    code, out, _ = run_cli(capsys, "subscribers", "delete", "nobody@example.org", "--yes")
    assert code == 0 and "erased" not in out and "nothing to erase" in out
    code, out, _ = run_cli(capsys, "subscribers", "delete", PUNYCODE, "--yes")
    assert code == 0 and "erased;" in out
    code, _, _ = run_cli(capsys, "subscribers", "show", UNICODE)
    assert code != 0


def test_migration_rekeys_punycode_suppressions(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine, insert, select

    from campaign.audience.tables import events, suppressions, utcnow
    from campaign.db import MIGRATIONS, migrate

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0004_schedule")
    old_hash = hashlib.sha256(PUNYCODE.encode()).hexdigest()
    now = utcnow()
    with engine.begin() as connection:
        for email, hashed, reason in (
            (PUNYCODE, old_hash, "complained"),
            ("ana@xn--exmple-cua.org", "x" * 64, "unsubscribed"),
            ("ana@exämple.org", email_hash("ana@exämple.org"), "bounced"),
        ):
            connection.execute(
                insert(suppressions).values(
                    email_hash=hashed, email=email, reason=reason, source="old", created_at=now
                )
            )
        connection.execute(
            insert(events).values(
                email_hash=old_hash, kind="complaint", source="old", created_at=now
            )
        )
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(select(suppressions.c.email, suppressions.c.reason)).all()
        assert sorted(map(tuple, rows)) == [("ana@exämple.org", "bounced"), (UNICODE, "complained")]
        assert connection.execute(select(events.c.email_hash)).scalar() == email_hash(UNICODE)
