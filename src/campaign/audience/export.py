"""`campaign subscribers export`: the audience as CSV, in a shape `subscribers import` reads back."""

from __future__ import annotations

import csv
from typing import TextIO

from campaign.audience.store import Store

LEADING = ["email", "first_name", "last_name", "name"]
TRAILING = ["status", "lists", "topics", "consent_source", "consent_at", "created_at"]
"""About our own state; an import skips these columns (see importer.SKIPPED_HEADERS)."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is run as a formula by spreadsheets (CSV injection)."""


def inert(cell: str) -> str:
    """`cell` as a spreadsheet shows it without running it: a leading ' before a formula start.
    `subscribers import` takes that quote off again (see `importer.unquoted`)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def export_csv(store: Store, out: TextIO, list_name: str | None = None) -> int:
    """Write every subscriber (of `list_name`, if given) to `out`; the number written.

    Streams twice (once for the merge-field names, once for the rows) so memory stays flat.
    """
    extra = sorted(
        {key for subscriber in store.subscribers(list_name) for key in subscriber.fields}
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([inert(cell) for cell in LEADING + extra + TRAILING])
    written = 0
    for sub in store.subscribers(list_name):
        row = (
            [sub.email, sub.first_name, sub.last_name, sub.name]
            + [sub.fields.get(key, "") for key in extra]
            + [
                sub.status
                if sub.suppressed is None or sub.status != "subscribed"
                else sub.suppressed,
                ";".join(sorted(sub.lists)),
                ";".join(sorted(sub.topics)),
                sub.consent_source or "",
                sub.consent_at.isoformat() if sub.consent_at else "",
                sub.created_at.isoformat(),
            ]
        )
        writer.writerow([inert(cell) for cell in row])
        written += 1
    return written
