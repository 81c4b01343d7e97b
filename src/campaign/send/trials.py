"""Sends that leave the ledger alone: a test to a few addresses, and a dry run of the real one.

Both make every message the way the engine does (`prepare_messages`), so what they
show or deliver is what the send would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from campaign.assets import store_assets
from campaign.audience.choice import parsed
from campaign.clicks import Tracker
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.db import connect
from campaign.message import Message
from campaign.personalise import TEST_PREFIX, Personaliser
from campaign.providers import Provider, Result, create, provider_class
from campaign.send import ledger
from campaign.send.engine import Audience, open_store, prepare_messages


@dataclass(frozen=True, slots=True)
class _TestRecipient:
    email: str
    public_id: str = "test"
    name: str = ""
    fields: dict[str, str] = field(default_factory=dict)


async def send_test(
    config: Config,
    compiled: Compiled,
    addresses: Sequence[str],
    *,
    provider: Provider | None = None,
) -> list[Result]:
    """Send the campaign to `addresses` only, "[TEST]" before the subject; the ledger is untouched.
    Links carry a token of no subscriber, so they lead to the pages but change nothing. One
    result per address, in order (an address the provider cannot carry: REJECTED, why)."""
    await asyncio.to_thread(store_assets, connect(config.database_url), compiled)
    own_provider = provider is None
    provider = provider or create(config)
    personaliser = Personaliser.for_config(
        config,
        compiled,
        list_name="test",
        subject_prefix=TEST_PREFIX,
        raw=provider.wants_raw,
        json=provider.wants_json,
    )
    recipients = [(_TestRecipient(a), ledger.new_send_id()) for a in addresses]
    messages, results = prepare_messages(provider, personaliser, recipients)
    try:
        for start in range(0, len(messages), provider.max_batch):
            results.extend(await provider.send(messages[start : start + provider.max_batch]))
    finally:
        if own_provider:
            await provider.aclose()
    by_id = {r.send_id: r for r in results}
    return [by_id[send_id] for _, send_id in recipients]  # in the order of `addresses`


@dataclass
class DryRun:
    """What a real send would do now."""

    recipients: int
    already_sent: int
    bytes: int
    sample: Message | None
    provider: str
    refused: list[str] = field(default_factory=list)
    """Why each recipient the provider cannot carry would fail (the others go)."""


def dry_run(
    config: Config,
    compiled: Compiled,
    *,
    list_name: str,
    topics: Sequence[str] = (),
    segment: str | None = None,
    store: Audience | None = None,
    engine: Engine | None = None,
) -> DryRun:
    """Build every message and run every check a send runs (signing key, provider settings and
    secrets, the list, each recipient against the provider), and send nothing."""
    config.secret_key  # noqa: B018
    cls = provider_class(config.provider.name)
    provider = create(config)  # validates the provider's options and secrets
    asyncio.run(provider.aclose())
    engine = engine or connect(config.database_url)
    store = store or open_store(engine)
    existing = ledger.summary(engine, compiled.slug)
    personaliser = Personaliser.for_config(
        config,
        Tracker.for_config(config).track(compiled),
        list_name=list_name,
        raw=cls.wants_raw,
        json=cls.wants_json,
    )
    count = size = 0
    sample = None
    refused: list[str] = []
    for recipient in store.recipients(list_name, topics, segment=parsed(segment), chunk=2000):
        messages, failed = prepare_messages(provider, personaliser, [(recipient, "dry-run")])
        refused += [r.reason for r in failed]
        for message in messages:
            size += (
                len(message.raw)
                if message.raw is not None
                else len(message.html) + len(message.text)
            )
            sample = sample or message
        count += 1
    return DryRun(count, existing.sent if existing else 0, size, sample, cls.name, refused)
