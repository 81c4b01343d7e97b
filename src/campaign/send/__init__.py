"""Sending a campaign: the engine (batches, concurrency, rate limit, retries) over the ledger.

    summary = await send_campaign(config, compiled, list_name="newsletter")

`campaign.send.ledger` holds the per-recipient rows that make a send exactly-once
and resumable, and what the web host needs of them (`record_event`, `get_send`,
`sent_campaigns`).
"""

from campaign.send.engine import DryRun, Progress, SendSummary, dry_run, send_campaign, send_test

__all__ = ["DryRun", "Progress", "SendSummary", "dry_run", "send_campaign", "send_test"]
