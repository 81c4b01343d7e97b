"""Segments: the same rows for the same condition on SQLite and PostgreSQL as the Python
reference meaning, on random data; malformed conditions refused at their column."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from campaign.audience import Store
from campaign.audience.segments import Row, SegmentError, matches, parse
from campaign.audience.tables import subscribers
from campaign.db import connect

CITIES = ["Pueblo", "pueblo", "Denver", "Boulder", "", "Grand Junction", "Zürich", "O'Brien"]
ROLES = ["board", "staff", "volunteer", "", "Staff"]
AGES = ["17", "18", "42", "-3", "7.5", "", "n/a", "100", "1e3"]
SINCE = ["2024-12-31", "2025-01-01", "2025-06-15T10:00", "", "soon", "2025-1-1"]
LISTS = ["news", "volunteers", "board"]
TOPICS = ["events", "policy", "jobs"]

CONDITIONS = [
    "city = 'Pueblo'",
    "city != 'pueblo'",
    "city in ('Denver', 'boulder', 'O''Brien')",
    "city contains 'bo' or city contains 'ü'",
    "city is empty",
    "city is not empty and role = 'staff'",
    "age > 17",
    "age >= 18 and age < 100",
    "age != 42",
    "age = 7.5",
    "not age <= 18",
    "since >= 2025-01-01",
    "since < 2025-06-15",
    "joined > 2025-01-01",
    "joined = 2025-03-01",
    "joined != 2025-03-01 and joined <= 2025-06-30",
    "in list 'volunteers'",
    "not in list 'board' and has topic 'events'",
    "has topic 'jobs' or (role in ('board', 'staff') and not city = 'Denver')",
    "first_name = 'ann' or last_name contains 'SMI'",
    "email contains '@example.net'",
    "missing_field = 'x'",
    "missing_field is empty",
    "missing_field != 'x'",
    "missing_field > 3",
]


def _people(store: Store, rng: random.Random) -> list[Row]:
    """Random subscribers on the news list (and maybe others), with the rows `matches` reads."""
    rows: list[Row] = []
    start = datetime(2024, 12, 1, tzinfo=UTC)
    for n in range(120):
        email = f"p{n}@example.{rng.choice(['org', 'net'])}"
        first = rng.choice(["Ann", "ann", "Bob", ""])
        last = rng.choice(["Smith", "Smithers", "Jones", ""])
        fields = {
            k: v
            for k, v in (
                ("city", rng.choice(CITIES)),
                ("role", rng.choice(ROLES)),
                ("age", rng.choice(AGES)),
                ("since", rng.choice(SINCE)),
            )
            if rng.random() < 0.85
        }
        chosen_lists = {"news"} | {x for x in LISTS[1:] if rng.random() < 0.4}
        chosen_topics = {t for t in TOPICS if rng.random() < 0.4}
        for list_name in sorted(chosen_lists):
            store.subscribe(
                email,
                list_name=list_name,
                source="test",
                first_name=first,
                last_name=last,
                fields=fields,
                topics=sorted(chosen_topics),
            )
        joined = start + timedelta(hours=rng.randrange(0, 24 * 240))
        with store.engine.begin() as connection:
            connection.execute(
                update(subscribers).where(subscribers.c.email == email).values(created_at=joined)
            )
        sub = store.find(email)
        assert sub is not None
        values = {
            "email": email,
            "name": sub.name,
            "first_name": first,
            "last_name": last,
            "status": "subscribed",
            **fields,
        }
        rows.append(Row(values, joined, frozenset(chosen_lists), frozenset(sub.topics)))
    return rows


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(connect(db_url))


def test_every_condition_selects_what_the_reference_selects(store: Store) -> None:
    rows = _people(store, random.Random(2025))
    for condition in CONDITIONS:
        node = parse(condition)
        expected = {r.values["email"] for r in rows if matches(node, r)}
        got = {r.email for r in store.recipients("news", segment=node)}
        assert got == expected, condition
        assert store.count_recipients("news", segment=node) == len(expected), condition
    assert any(parse(c) for c in CONDITIONS)


def test_conditions_narrow_topics_and_lists_together(store: Store) -> None:
    rows = _people(store, random.Random(7))
    node = parse("age >= 18")
    expected = {r.values["email"] for r in rows if "events" in r.topics and matches(node, r)}
    got = {r.email for r in store.recipients("news", ["events"], segment=node)}
    assert got == expected and got


@pytest.mark.parametrize(
    ("condition", "column", "words"),
    [
        ("", 1, "expected a condition"),
        ("city = ", 8, "expected a 'quoted' value"),
        ("city == 'x'", 7, "expected a 'quoted' value"),
        ("city < 'x'", 6, "needs a number or a date"),
        ("(city = 'x'", 12, "expected ')'"),
        ("city = 'x' city", 12, "expected 'and', 'or' or the end"),
        ("in list volunteers", 9, "expected a 'quoted' value"),
        ("joined contains '2025'", 8, "joined takes"),
        ("joined > 'yesterday'", 8, "joined compares with a date"),
        ("city = 'x'; DROP TABLE subscribers", 11, "unexpected character"),
        ('city = "x"', 8, "unexpected character"),
        ("since > 2025-02-30", 9, "not a date"),
        ("and = 1", 1, "expected a field"),
        ("age in (1, 2", 13, "expected ',' or ')'"),
        ("city is nothing", 9, "expected 'empty'"),
        ("(" * 60 + "a = 1" + ")" * 60, 51, "nest at most 50"),
    ],
)
def test_malformed_conditions_are_refused_at_their_column(
    condition: str, column: int, words: str
) -> None:
    with pytest.raises(SegmentError) as refused:
        parse(condition)
    assert refused.value.column == column
    assert words in str(refused.value)
    assert f"(column {column})" in str(refused.value)


def test_values_are_bound_never_spliced(store: Store) -> None:
    store.subscribe("a@example.org", list_name="news", source="test", fields={"city": "x'; --"})
    node = parse("city = 'x''; --'")
    assert [r.email for r in store.recipients("news", segment=node)] == ["a@example.org"]
