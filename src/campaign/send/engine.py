"""The send engine: recipients -> ledger -> personalised batches -> provider, exactly once.

A run opens (or resumes) the campaign's send, queues every recipient in the
ledger, then up to `concurrency` workers (as many batches as the in-flight memory
budget holds) each loop: wait for the rate limit, claim a batch (marked `sending`,
committed), personalise it, hand it to the provider at once, and write each
recipient's result in the transaction that claims the worker's next batch.
Claiming only when the batch can leave means a row is `sending` only while its
request is on its way or its reply is about to be written: a killed process leaves
unknown no more than one batch per worker.

One recipient's problem is theirs: a message that cannot be made or that the service
cannot carry (`Provider.address`, `Provider.adapt`) fails that recipient alone, with
the reason. Retryable failures come back later with exponential backoff (or the
service's Retry-After, which also holds every worker). Throttling holds every worker
for as long as the service says and puts the batch back without using an attempt.
Too many provider calls in a row that delivered nothing (failed, unknown or refused
for good) pause the send. A refusal of the account (a ProviderError, or a BLOCKED
result) stops it at once: the refused rows go back to pending with everyone not sent.
Any number of engines, in any number of processes, may work on one send: the
ledger's claims never overlap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, Select

from campaign import activity
from campaign.assets import store_assets
from campaign.audience.choice import parsed
from campaign.audience.segments import Node
from campaign.audience.tables import utcnow
from campaign.clicks import Tracker
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.db import connect
from campaign.errors import ProviderError
from campaign.message import Message
from campaign.personalise import Personaliser, Recipient
from campaign.providers import Provider, Result, Status, create
from campaign.providers.batching import Unsendable
from campaign.send import ledger
from campaign.send.ledger import Outcome, Queued, Summary
from campaign.send.ratelimit import RateLimiter
from campaign.web.webhooks import Event, record


class Audience(Protocol):
    """What the engine needs of the audience store (campaign.audience.Store)."""

    def recipients(
        self,
        list_name: str,
        topics: Sequence[str] = (),
        *,
        segment: Node | None = None,
        after_id: int = 0,
        chunk: int = 1000,
    ) -> Iterable[Any]: ...

    def mailable_ids(self, ids: Sequence[int], list_name: str | None = None) -> set[int]: ...

    def count_recipients(
        self, list_name: str, topics: Sequence[str] = (), segment: Node | None = None
    ) -> int: ...

    def recipient_query(
        self, list_name: str, topics: Sequence[str] = (), segment: Node | None = None
    ) -> Select[Any]: ...


@dataclass
class Progress:
    """Counts of this run, passed to the progress callback after every batch."""

    total: int
    """Deliveries to do in this run (pending once queueing is over)."""
    queued: int = 0
    """Recipients queued into the ledger by this run so far."""
    queueing: bool = False
    """The run is still queueing recipients (`queued` grows); nothing is sent yet."""
    started: float = 0.0
    """When the first batch was claimed (`time.monotonic()`): rates count from there."""
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    bounced: int = 0
    """Refused for good by the recipient's server during the send (SMTP 5xx): suppressed."""
    retrying: int = 0
    """Deliveries postponed for a retry (counted each time)."""

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unknown + self.skipped + self.bounced

    def rate(self, now: float) -> float:
        """Deliveries done per second since the first batch was claimed (0 before)."""
        return self.done / (now - self.started) if self.started and now > self.started else 0.0


@dataclass
class SendSummary(Summary):
    """The ledger's summary of the send after this run, and what the run itself noticed."""

    content_changed: bool = False
    """The campaign was built anew but the send resumed with the content frozen when it began."""
    interrupted: int = 0
    """Deliveries a dead process left mid-request, found by this run and made unknown."""
    stopped: str = ""
    """Why this run stopped early (paused or failed), else empty."""


ProgressCallback = Callable[[Progress], None]


def open_store(engine: Engine) -> Audience:
    from campaign.audience import Store

    return Store(engine)


IN_FLIGHT_BYTES = 24_000_000
"""About how much message content all concurrent batches may hold at once: a 50 KB
newsletter in batches of 500, four at a time, would otherwise hold 300 MB (and memory
must stay flat and small for a million recipients)."""


def sizing(config: Config, provider: Provider, compiled: Compiled) -> tuple[int, int]:
    """Messages per provider call, and how many batches may hold their messages at once
    (the number of workers).

    A batch is [send] batch_size capped by the provider, by one second's worth of messages
    when a rate limit is set, and by half the in-flight memory budget: two batches always
    fit (one built while another is on its way). Up to `concurrency` batches fit when the
    messages are small; large ones take fewer, bigger batches (each costs ledger round trips
    and a request, so bigger ones are cheaper per message)."""
    size = min(config.send.batch_size or provider.max_batch, provider.max_batch)
    if config.send.rate_limit > 0:
        size = min(size, max(1, int(config.send.rate_limit)))
    # Two copies: the message as the provider reads it (its strings, or the MIME bytes or JSON
    # bodies made for it: the strings are then never made) and the request body.
    per_message = (len(compiled.html) + len(compiled.text)) * 2
    size = max(1, min(size, IN_FLIGHT_BYTES // (per_message * min(config.send.concurrency, 2))))
    return size, max(1, min(config.send.concurrency, IN_FLIGHT_BYTES // (per_message * size)))


PUT_BACK = (Status.THROTTLED, Status.BLOCKED)
"""Results whose rows go back to pending as they were: nothing went out, no attempt used."""
FAILING = (Status.REJECTED, Status.BOUNCED, Status.RETRY, Status.UNKNOWN)
"""Results that count toward the pause when a call delivered nothing."""


def prepare_messages(
    provider: Provider,
    personaliser: Personaliser,
    recipients: Sequence[tuple[Recipient, str]],
) -> tuple[list[Message], list[Result]]:
    """Each (recipient, send id)'s message fitted to `provider`, and a REJECTED result naming
    the address and what to do for each recipient whose message cannot be made or carried.
    Nothing here stops the send: one recipient's problem is theirs."""
    messages: list[Message] = []
    refused: list[Result] = []
    for recipient, send_id in recipients:
        try:
            address = provider.address(recipient.email)
            message = personaliser.message(recipient, send_id, address)
            messages.append(provider.adapt(message))
        except Unsendable as exc:
            refused.append(Result(send_id, Status.REJECTED, reason=str(exc)[:1000]))
        except Exception as exc:  # noqa: BLE001  (a value the code did not foresee)
            reason = (
                f"{recipient.email}: the message could not be made ({type(exc).__name__}: {exc}); "
                "correct this subscriber's details, or report this as a bug"
            )
            refused.append(Result(send_id, Status.REJECTED, reason=reason[:1000]))
    return messages, refused


class _Run:
    """One engine's work on one send: the workers and what they share."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        send: ledger.SendInfo,
        store: Audience,
        provider: Provider,
        personaliser: Personaliser,
        *,
        worker_id: str,
        progress: Progress,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.send = send
        self.store = store
        self.provider = provider
        self.personaliser = personaliser
        self.worker_id = worker_id
        self.progress = progress
        self.on_progress = on_progress
        self.size, self.workers = sizing(config, provider, send.compiled)
        """Each worker holds at most one batch, from its claim to its reply."""
        self.limiter = RateLimiter(engine, send.id, config.send.rate_limit, self.size)
        self.hold_until = 0.0
        self.failures_in_a_row = 0
        self.throttled_in_a_row = 0
        self.stopped = ""
        self.error: ProviderError | None = None

    def _mailable(self, ids: list[int]) -> set[int]:
        return self.store.mailable_ids(ids, self.send.list_name)

    async def worker(self) -> None:
        """Claim, send, and write the outcome with the next claim (one transaction per batch).
        An outcome waits for that claim only while nothing else is waited for: before a hold,
        a turn of the rate limit, a bounce or a stop it is written on its own."""
        done: _Done | None = None

        async def write_done() -> None:
            nonlocal done
            await self._write(done)
            done = None

        while not self.stopped:
            if (wait := self.hold_until - time.monotonic()) > 0:
                await write_done()
                await asyncio.sleep(wait)
                continue
            async with self.limiter.paced() as slot:
                # The rate limit first, the claim after: rows waiting for their turn stay pending.
                async with self.limiter.turn(slot, waiting=write_done):
                    if self.stopped or self.hold_until > time.monotonic():
                        continue
                    batch = await asyncio.to_thread(
                        ledger.claim,
                        self.engine,
                        self.send.id,
                        worker=self.worker_id,
                        limit=self.size,
                        mailable=self._mailable,
                        outcomes=done.outcomes if done else (),
                        back=done.back if done else (),
                    )
                    self._written(done)
                    done = None
                    slot.took(len(batch or ()))
                if batch and not self.progress.started:
                    self.progress.started = time.monotonic()
                sent = await self._send(batch) if batch else None
            if batch is None:
                return
            if not batch:
                due = await asyncio.to_thread(ledger.next_retry_at, self.engine, self.send.id)
                if due is None:
                    return
                await asyncio.sleep(min(max((due - utcnow()).total_seconds(), 0.01), 1.0))
                continue
            if sent is not None:
                answered, refused = sent
                self._hold(answered)
                refusal = self._refusal(answered)
                back = {r.send_id for r in answered if r.status in PUT_BACK}
                outcomes = self._outcomes(
                    [q for q in batch if q.send_id not in back], [*answered, *refused]
                )
                bounced = {r.send_id for r in answered if r.status is Status.BOUNCED}
                done = _Done(outcomes, sorted(back), bounced)
                self._judge(answered)
                if bounced or refusal:
                    await write_done()
                if bounced:
                    await asyncio.to_thread(record_bounces, self.engine, batch, answered)
                if refusal:
                    await self._stop(ProviderError(refusal))
        await write_done()

    async def _write(self, done: _Done | None) -> None:
        """Write `done` on its own: no claim follows at once."""
        if done is not None:
            await asyncio.to_thread(
                ledger.settle, self.engine, self.worker_id, done.outcomes, done.back
            )
            self._written(done)

    async def _stop(self, error: ProviderError) -> None:
        """The service refused the account: stop every worker; the send is `failed` with its words."""
        if self.error is None:
            self.error = error
            self.stopped = "failed"
            await asyncio.to_thread(
                ledger.set_status, self.engine, self.send.id, "failed", str(error)
            )

    async def _send(self, batch: list[Queued]) -> tuple[list[Result], list[Result]] | None:
        """Personalise `batch` and hand it to the provider; None when the provider refused the
        request as a whole (the batch is back to pending and the send stopped). Else the
        service's results, and a REJECTED result for each recipient whose message cannot be
        made or carried (the rest go all the same)."""
        messages, refused = prepare_messages(
            self.provider, self.personaliser, [(q, q.send_id) for q in batch]
        )
        if not messages:
            return [], refused
        try:
            return await self.provider.send(messages), refused
        except ProviderError as exc:
            await asyncio.to_thread(
                ledger.release, self.engine, self.worker_id, [m.send_id for m in messages]
            )
            ids = {r.send_id for r in refused}
            outcomes = self._outcomes([q for q in batch if q.send_id in ids], refused)
            await asyncio.to_thread(ledger.record, self.engine, self.worker_id, outcomes)
            await self._stop(exc)
            return None
        except Exception as exc:  # a provider bug must not lose track of the batch
            reason = f"{self.provider.name}: {type(exc).__name__}: {exc}"[:500]
            return [Result(m.send_id, Status.UNKNOWN, reason=reason) for m in messages], refused

    def _refusal(self, results: list[Result]) -> str:
        """The service's words when it refused the account (the send must stop), else ""."""
        for result in results:
            if result.status is Status.BLOCKED or result.stops:
                if not self.stopped:
                    self.stopped = "failed"  # at once: no worker claims another batch
                return result.reason or f"{self.provider.name} refused the send"
        return ""

    def _outcomes(self, batch: Sequence[Queued], results: list[Result]) -> list[Outcome]:
        """What to record for `batch`'s rows from `results` (a row without one: unknown)."""
        by_id = {r.send_id: r for r in results}
        now = utcnow()
        settings = self.config.send
        outcomes = []
        for queued in batch:
            result = by_id.get(queued.send_id) or Result(
                queued.send_id,
                Status.UNKNOWN,
                reason=f"{self.provider.name} gave no result for this message",
            )
            if result.status is Status.ACCEPTED:
                outcomes.append(Outcome(queued.send_id, "sent", result.provider_id))
            elif result.status is Status.REJECTED:
                outcomes.append(
                    Outcome(
                        queued.send_id, "failed", result.provider_id, result.reason or "rejected"
                    )
                )
            elif result.status is Status.BOUNCED:  # failed; `record_bounces` marks it bounced
                outcomes.append(
                    Outcome(queued.send_id, "failed", result.provider_id, result.reason)
                )
            elif result.status is Status.UNKNOWN:
                outcomes.append(
                    Outcome(
                        queued.send_id, "unknown", result.provider_id, result.reason or "unknown"
                    )
                )
            elif queued.attempts >= settings.max_attempts:
                # Failed for now, too often: failed, but marked retryable for the next run.
                outcomes.append(
                    Outcome(queued.send_id, "failed", None, result.reason or "failed", retry_at=now)
                )
            else:
                backoff = min(
                    settings.backoff_seconds * 2 ** (queued.attempts - 1),
                    settings.backoff_max_seconds,
                )
                delay = result.retry_after if result.retry_after is not None else backoff
                outcomes.append(
                    Outcome(
                        queued.send_id,
                        "pending",
                        None,
                        result.reason,
                        now + timedelta(seconds=delay),
                    )
                )
        return outcomes

    def _hold(self, results: list[Result]) -> None:
        """A Retry-After holds every worker, not just the one that got it; so does throttling,
        for as long as the service says, else for a backoff that grows while it lasts."""
        waits = [
            r.retry_after
            for r in results
            if r.status in (Status.RETRY, Status.THROTTLED) and r.retry_after is not None
        ]
        if any(r.status is Status.THROTTLED for r in results):
            self.throttled_in_a_row += 1
            settings = self.config.send
            backoff = min(
                settings.backoff_seconds * 2 ** min(self.throttled_in_a_row - 1, 20),
                settings.backoff_max_seconds,
            )
            waits.append(max(waits) if waits else backoff)
        elif any(r.status is Status.ACCEPTED for r in results):
            self.throttled_in_a_row = 0
        if waits:
            self.hold_until = max(self.hold_until, time.monotonic() + max(waits))

    def _judge(self, results: list[Result]) -> None:
        """Pause the send after too many provider calls in a row that delivered nothing: what
        the service answered (not recipients refused before sending), for good or for now."""
        trouble = [r for r in results if r.status in FAILING]
        if any(r.status is Status.ACCEPTED for r in results):
            self.failures_in_a_row = 0
        elif trouble:
            self.failures_in_a_row += 1
            if (
                self.failures_in_a_row >= self.config.send.max_consecutive_failures
                and not self.stopped
            ):
                self.stopped = "paused"
                note = (
                    f"paused after {self.failures_in_a_row} provider calls in a row that "
                    "delivered nothing "
                    f"(last: {trouble[-1].reason}); fix the cause and run the send again to continue"
                )
                ledger.set_status(self.engine, self.send.id, "paused", note)

    def _written(self, done: _Done | None) -> None:
        """Count a batch in the progress once its outcome is in the ledger."""
        if done is None:
            return
        progress = self.progress
        for outcome in done.outcomes:
            if outcome.send_id in done.bounced:
                progress.bounced += 1
            elif outcome.status == "pending":
                progress.retrying += 1
            else:
                setattr(progress, outcome.status, getattr(progress, outcome.status) + 1)
        if self.on_progress is not None:
            self.on_progress(progress)


@dataclass(frozen=True, slots=True)
class _Done:
    """A batch's outcome not yet in the ledger: written with the worker's next claim."""

    outcomes: list[Outcome]
    back: list[str]
    """Rows the service refused as a whole (throttled, blocked): pending again, no attempt used."""
    bounced: set[str]


def record_bounces(engine: Engine, batch: list[Queued], results: list[Result]) -> None:
    """A recipient's server refusing them for good is a hard bounce: recorded through the
    webhooks' exactly-once path, so the address is suppressed as if the service had said so."""
    by_id = {q.send_id: q for q in batch}
    events = [
        Event(
            service="smtp:reply",
            event_id=result.send_id,
            kind="bounced",
            email=by_id[result.send_id].email,
            hard=True,
            send_id=result.send_id,
            detail=result.reason,
        )
        for result in results
        if result.status is Status.BOUNCED and result.send_id in by_id
    ]
    if events:
        record(engine, events)


async def send_campaign(
    config: Config,
    compiled: Compiled,
    *,
    list_name: str,
    topics: Sequence[str] = (),
    segment: str | None = None,
    provider: Provider | None = None,
    store: Audience | None = None,
    engine: Engine | None = None,
    resend_unknown: bool = False,
    progress: ProgressCallback | None = None,
    worker_id: str | None = None,
) -> SendSummary:
    """Send `compiled` to `list_name` (members who chose any of `topics`, if given), or resume
    its send. Returns the ledger summary; raises ProviderError when the service refused the
    send as a whole (the send is then `failed`; running again resumes it)."""
    config.secret_key  # noqa: B018  (a ConfigError now, before anything is recorded)
    engine = engine or connect(config.database_url)
    store = store or open_store(engine)
    own_provider = provider is None
    provider = provider or create(config)
    worker_id = worker_id or ledger.new_worker_id()
    try:
        await asyncio.to_thread(store_assets, engine, compiled)
        send = await asyncio.to_thread(
            ledger.open_send, engine, compiled, list_name, topics, segment
        )
        await asyncio.to_thread(activity.note_run, engine, send.id, provider.name)
        if not send.enqueued:
            recipients = store.recipient_query(list_name, topics, parsed(segment))
            queueing = Progress(total=0, queueing=True)

            def queued(added: int) -> None:
                queueing.queued += added
                if progress is not None:
                    progress(queueing)

            await asyncio.to_thread(ledger.enqueue, engine, send, recipients, on_chunk=queued)
        interrupted = await asyncio.to_thread(
            ledger.prepare, engine, send.id, resend_unknown=resend_unknown
        )
        before = ledger.summary(engine, send.campaign)
        assert before is not None
        personaliser = Personaliser.for_config(
            config,
            Tracker.for_config(config).track(send.compiled),
            list_name=list_name,
            raw=provider.wants_raw,
            json=provider.wants_json,
        )
        run = _Run(
            config,
            engine,
            send,
            store,
            provider,
            personaliser,
            worker_id=worker_id,
            progress=Progress(total=before.count("pending")),
            on_progress=progress,
        )
        await asyncio.gather(*(run.worker() for _ in range(run.workers)))
        if run.error is not None:
            raise run.error
        if not run.stopped:
            await asyncio.to_thread(ledger.finish_if_done, engine, send.id)
    finally:
        if own_provider:
            await provider.aclose()
    after = ledger.summary(engine, send.campaign)
    assert after is not None
    return SendSummary(
        campaign=after.campaign,
        status=after.status,
        note=after.note,
        counts=after.counts,
        failed_reasons=after.failed_reasons,
        unknown_reasons=after.unknown_reasons,
        content_changed=send.compiled.source_hash != compiled.source_hash,
        interrupted=interrupted,
        stopped=run.stopped,
    )
