"""A preview server over a copy of the repository's workspace, run by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.config import load_config
from campaign.web.preview import create_preview_app
from tests.servers import serve

EXAMPLE = "2018-11-wsr-primer"


@pytest.fixture
def preview_url(workspace: Path) -> Iterator[str]:
    """Base URL of a running preview of `workspace` (its watcher stopped afterwards)."""
    app = create_preview_app(load_config(workspace), None)
    try:
        with serve(app) as url:
            yield url
    finally:
        app.state.preview.close()
