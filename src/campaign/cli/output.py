"""What commands share for scripts: the `--json` option and how JSON is printed.

JSON goes to stdout as one document (an object, or an array for listings), with ISO 8601
times; messages and errors stay on stderr, so `campaign status X --json | jq` always parses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import typer

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def print_json(data: Any) -> None:
    """`data` as JSON on stdout (plain print: rich would wrap and colour it)."""
    typer.echo(json.dumps(data, default=_default, ensure_ascii=False, indent=2))
