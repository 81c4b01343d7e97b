"""How a bench script hands its headline figures to bench/run.py.

Each script prints its figures for a person as it likes; `emit` also appends one
JSON line per figure to the file named by BENCH_ROWS when bench/run.py runs it.
"""

from __future__ import annotations

import json
import os
from typing import Literal


def emit(
    area: str, row: str, value: float, unit: str, *, better: Literal["higher", "lower"]
) -> None:
    """Report one figure; `better` says which way is an improvement."""
    path = os.environ.get("BENCH_ROWS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(
                json.dumps(
                    {"area": area, "row": row, "value": value, "unit": unit, "better": better}
                )
                + "\n"
            )
