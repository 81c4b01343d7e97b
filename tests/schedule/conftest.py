"""Fixtures for schedules and dispatch: a workspace on each database, a compiled campaign."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign.compiled import Compiled
from campaign.config import Config, load_config
from tests.conftest import REAL_FROM


@pytest.fixture
def config(workspace: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The repository's workspace (time zone America/Denver) on a fresh database, which the
    CLI and subprocesses use too."""
    monkeypatch.setenv("CAMPAIGN_DATABASE_URL", db_url)
    return load_config(workspace)


def make_compiled(
    slug: str = "2026-12-news",
    *,
    source_hash: str = "a" * 64,
    send_at: datetime | None = None,
    subject: str = "December news",
) -> Compiled:
    """A small compiled campaign, as a build would freeze it."""
    return Compiled(
        slug=slug,
        subject=subject,
        preheader="What happened this month",
        from_=REAL_FROM,  # a real provider's preflight (at dispatch too) refuses example domains
        layout="newsletter",
        html=(
            "<html><body><p>Hello {{{field:first_name}}}</p>"
            '<a href="{{{link:unsubscribe}}}">unsubscribe</a></body></html>'
        ),
        text="Hello {{{field:first_name}}}\nunsubscribe: {{{link:unsubscribe}}}\n",
        placeholders=frozenset({"field:first_name", "link:unsubscribe"}),
        source_hash=source_hash,
        send_at=send_at,
        built_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
    )
