"""The newest revisions of the schema, read from the migration files without importing alembic.

Every command checks the database against these with one query; alembic (and mako with it)
is imported only when that check says a migration is due. Parsing the files, rather than
keeping a list by hand, keeps the heads right when parallel branches add revisions;
tests/test_migrations_heads.py checks the answer against alembic's own.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

VERSIONS = Path(__file__).parent / "versions"

_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


def _names(value: object) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    if isinstance(value, tuple | list):
        return {str(item) for item in value}
    raise ValueError(f"unexpected revision value {value!r}")


@cache
def schema_heads() -> frozenset[str]:
    """Revisions no other revision builds on: what `alembic upgrade heads` leaves in alembic_version."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            continue
        revisions |= _names(ast.literal_eval(found["revision"]))
        parents |= _names(ast.literal_eval(found.get("down_revision", "None")))
    return frozenset(revisions - parents)
