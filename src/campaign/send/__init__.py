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
    from campaign.send.engine import Progress, SendSummary, send_campaign
    from campaign.send.trials import DryRun, dry_run, send_test

_HOMES = {
    "DryRun": "trials",
    "Progress": "engine",
    "SendSummary": "engine",
    "dry_run": "trials",
    "send_campaign": "engine",
    "send_test": "trials",
}
__all__ = ["DryRun", "Progress", "SendSummary", "dry_run", "send_campaign", "send_test"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"campaign.send.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'campaign.send' has no attribute {name!r}")
