"""Sending a campaign: the engine (batches, concurrency, rate limit, retries) over the ledger.

    summary = await send_campaign(config, compiled, list_name="newsletter")

`campaign.send.ledger` holds the per-recipient rows that make a send exactly-once
and resumable, and what the web host needs of them (`record_event`, `get_send`,
`sent_campaigns`).

The engine (and every mail service's client with it) is imported on first use, so a
command that only reads the ledger (`campaign status`) does not pay for it.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaign.send.engine import (
        DryRun,
        Progress,
        SendSummary,
        dry_run,
        send_campaign,
        send_test,
    )

__all__ = ["DryRun", "Progress", "SendSummary", "dry_run", "send_campaign", "send_test"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("campaign.send.engine"), name)
    raise AttributeError(f"module 'campaign.send' has no attribute {name!r}")
