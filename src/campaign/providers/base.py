"""The contract between the send engine and a mail service.

A provider takes a batch of messages and answers with one `Result` per message.
It never retries and never sleeps: the engine owns retries, backoff, the rate
limit and the ledger. A problem with the send as a whole (bad credentials, a
request the service calls malformed) raises `ProviderError`, which stops the send;
one found after part of a batch was accepted is a BLOCKED result for the rest.
Before a message is built, `address` and `adapt` fit its recipient to the service
(IDNA domain, name limits, escapes) or raise `Unsendable`, which fails that
recipient alone.

`HTTPProvider` owns what every HTTP API shares: the client, timeouts, the mapping
of transport failures (never reached the service: retry; may have reached it:
unknown), 429/5xx with Retry-After, and 401/403. A service module only builds its
request and reads its reply.
"""

from __future__ import annotations

import email.utils
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from campaign.errors import ConfigError, ProviderError
from campaign.message import Message
from campaign.providers.batching import transport_address


class Status(StrEnum):
    ACCEPTED = "accepted"
    """The service took the message; `provider_id` is its id."""
    REJECTED = "rejected"
    """Refused for good (invalid or inactive address): do not retry."""
    BOUNCED = "bounced"
    """Refused for good by the recipient's own mail server (SMTP 5xx for the recipient):
    a hard bounce, suppressed at once."""
    RETRY = "retry"
    """Failed for now; safe to send again, after `retry_after` seconds if given."""
    UNKNOWN = "unknown"
    """The request may or may not have been processed (timeout, dropped connection)."""
    THROTTLED = "throttled"
    """The service asked to slow down (429, "maximum sending rate exceeded"): nothing went out;
    send again after `retry_after` seconds. Never counts as an attempt nor as a failure."""
    BLOCKED = "blocked"
    """Refused for a reason of the account, not of this recipient (unverified sender, sandbox,
    suspended, quota): nothing went out; the message stays pending and the send stops with
    `reason`, the service's own words."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """A delivery whose outcome is unknown, and when its request can have reached the service."""

    send_id: str
    since: datetime
    """When it was claimed: the request cannot have reached the service before."""
    until: datetime
    """By when the request had ended: marked unknown, or its sender's lease ran out."""
    email: str
    """The recipient's address, for logs that name a message's recipient but not our send id."""


CLOCK_MARGIN = timedelta(minutes=2)
"""Each delivery's window widened both ways when a service's log is searched by time: our
clock and the service's are not the same."""


def windows(unknown: Sequence[Unknown]) -> Iterator[tuple[datetime, datetime, set[str]]]:
    """The time windows the deliveries' requests were made in (widened by CLOCK_MARGIN),
    oldest first, overlapping ones merged, each with its send ids: a service's log read once
    per window serves every delivery in it."""
    begin = end = None
    ids: set[str] = set()
    for u in sorted(unknown, key=lambda u: u.since):
        if end is not None and u.since - CLOCK_MARGIN <= end:
            end = max(end, u.until + CLOCK_MARGIN)
        else:
            if begin is not None and end is not None:
                yield begin, end, ids
            begin, end, ids = u.since - CLOCK_MARGIN, u.until + CLOCK_MARGIN, set()
        ids.add(u.send_id)
    if begin is not None and end is not None:
        yield begin, end, ids


@dataclass(frozen=True, slots=True)
class Result:
    send_id: str
    status: Status
    provider_id: str | None = None
    reason: str = ""
    retry_after: float | None = None
    stops: bool = False
    """The account refused (`reason` says how): the send stops after this batch. Implied by
    BLOCKED; set on an UNKNOWN whose message the service holds (Mandrill's `queued` for a
    suspended account), so it is neither counted sent nor sent again."""


class Options(BaseModel):
    """A provider's settings from campaign.toml `[provider]` (besides `name`)."""

    model_config = ConfigDict(extra="forbid")


class HTTPOptions(Options):
    """Settings every HTTP service takes."""

    base_url: str | None = None
    """The API's address; unset: the service's own (`HTTPProvider.default_base_url`)."""


class Provider(ABC):
    name: ClassVar[str]
    max_batch: ClassVar[int] = 1
    """Most messages one `send` call takes."""
    wants_raw: ClassVar[bool] = False
    """True for services that take the message as MIME bytes: the engine then fills
    `Message.raw` from a template encoded once per campaign (fast)."""
    wants_json: ClassVar[bool] = False
    """True for services that take the bodies as JSON strings: the engine then fills
    `Message.json_bodies` the same way (escaping 50 KB per message was most of a send's CPU)."""
    Options: ClassVar[type[Options]] = Options
    known_at_once: ClassVar[int] = 500
    """Most unknown deliveries one `known` call is asked about (its log's rate limits)."""
    smtputf8: ClassVar[bool] = False
    """True when the service delivers to addresses with non-ASCII local parts (RFC 6531)."""

    def __init__(
        self,
        options: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        workspace: Path | None = None,
    ) -> None:
        try:
            self.options = self.Options.model_validate(dict(options))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"[provider] for {self.name}: {problems}", None) from None
        self.env = env
        self.workspace = workspace or Path.cwd()

    def path(self, value: str) -> Path:
        """A file setting, taken relative to the workspace (an absolute path stays as it is)."""
        return self.workspace / Path(value).expanduser()

    def secret(self, variable: str) -> str:
        """A secret from the environment; a clear error names the variable if unset."""
        value = self.env.get(variable, "").strip()
        if not value:
            raise ConfigError(f"the {self.name} provider needs the environment variable {variable}")
        return value

    def address(self, email: str) -> str:
        """The recipient's address as this service takes it (the domain in IDNA); raises
        Unsendable, naming the address and what to do, when it cannot carry it."""
        return transport_address(email, self.name, smtputf8=self.smtputf8)

    def adapt(self, message: Message) -> Message:
        """`message` fitted to this service's limits (name length, escapes); raises Unsendable
        when that recipient cannot be sent through it."""
        return message

    @abstractmethod
    async def send(self, batch: Sequence[Message]) -> list[Result]:
        """Deliver `batch` (at most `max_batch` messages); one Result per message, same order."""

    async def known(self, unknown: Sequence[Unknown]) -> set[str]:
        """The send ids of those `unknown` deliveries the service has taken, asked of its API
        before they are resent. Default: none known, so all are resent. Raises ProviderError
        when the service cannot tell (nothing is resent on a guess)."""
        return set()

    async def aclose(self) -> None:
        """Release connections."""

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


AFTER_DATE = re.compile(r"\bafter\s+(.+?)\s*(?:[.)\]]\s*)?$", re.IGNORECASE)


def retry_after_in_text(text: str) -> float | None:
    """Seconds until a date given in a service's words ("try again after <date>"), if any."""
    match = AFTER_DATE.search(text.strip())
    if match is None:
        return None
    value = match.group(1)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return retry_after_seconds(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def retry_after_seconds(value: str | None, default: float | None = None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class HTTPProvider(Provider):
    """Base for services with an HTTP API. Subclasses set `default_base_url` and
    implement `build_request` and `parse_response`."""

    Options: ClassVar[type[Options]] = HTTPOptions
    default_base_url: ClassVar[str]
    timeout: ClassVar[httpx.Timeout] = httpx.Timeout(30.0, connect=10.0)

    def __init__(
        self,
        options: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        workspace: Path | None = None,
    ) -> None:
        super().__init__(options, env, transport=transport, workspace=workspace)
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=16),
        )

    @property
    def base_url(self) -> str:
        """`base_url` from the options when set, else the default."""
        return str(getattr(self.options, "base_url", None) or self.default_base_url).rstrip("/")

    @abstractmethod
    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        """The one request that delivers `batch` (use `self.client.build_request`)."""

    @abstractmethod
    def parse_response(self, batch: Sequence[Message], response: httpx.Response) -> list[Result]:
        """Map a reply that is not 429, 5xx, 401 or 403 to one Result per message."""

    def error_message(self, response: httpx.Response) -> str:
        """The service's own words for an error reply (never our credentials)."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:500] or response.reason_phrase
        if isinstance(body, dict):
            for key in ("Message", "message", "error", "detail", "errors"):
                if key in body:
                    return str(body[key])[:500]
        return str(body)[:500]

    def read_error(self, batch: Sequence[Message], response: httpx.Response) -> list[Result] | None:
        """A service's own reading of an error reply (status >= 400), before the shared one
        below; None leaves it to that. May raise ProviderError (e.g. a daily quota reached)."""
        return None

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying after a 429 or 5xx; services with their own header override."""
        return retry_after_seconds(response.headers.get("Retry-After"))

    def _all(
        self,
        batch: Sequence[Message],
        status: Status,
        reason: str,
        retry_after: float | None = None,
    ) -> list[Result]:
        return [Result(m.send_id, status, reason=reason, retry_after=retry_after) for m in batch]

    async def pace(self) -> None:
        """Wait for this provider's turn to start a request (a send or a read of its log):
        at once here; a service that limits its requests per second overrides it."""

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        await self.pace()
        request = self.build_request(batch)
        try:
            response = await self.client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return self._all(batch, Status.RETRY, f"{self.name} unreachable: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return self._all(
                batch, Status.UNKNOWN, f"{self.name} did not answer: {type(exc).__name__}"
            )
        # The body is read. httpx's response and its stream refer to each other, so without this
        # the request (the whole batch, megabytes) lives until the next full garbage collection.
        response.stream = httpx.ByteStream(b"")
        if (
            response.status_code >= 400
            and (results := self.read_error(batch, response)) is not None
        ):
            return results
        if response.status_code == 429:
            reason = f"{self.name} asked to slow down: {self.error_message(response)}"
            return self._all(batch, Status.THROTTLED, reason, self.retry_after(response))
        if response.status_code >= 500:
            reason = f"{self.name} answered {response.status_code}: {self.error_message(response)}"
            return self._all(batch, Status.RETRY, reason, self.retry_after(response))
        if response.status_code == 401:
            raise ProviderError(
                f"{self.name} refused the credentials (401): {self.error_message(response)}"
            )
        if response.status_code == 403:
            # The key is known but may not do this (an unverified sender, a sandbox, a plan).
            raise ProviderError(
                f"{self.name} refused the send (403): {self.error_message(response)}"
            )
        return self.parse_response(batch, response)

    async def lookup(
        self,
        what: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        json: Mapping[str, Any] | None = None,
        why: Mapping[int, str] | None = None,
    ) -> Any:
        """The JSON of a GET from the service's log, or of a POST of `json` for services that
        take their searches in the body (`what` names it in errors; `why` adds what an error
        status means there). ProviderError when it does not answer 200 with JSON: `known` must
        not guess, or a message is sent twice."""
        await self.pace()
        try:
            response = await self.client.request(
                "GET" if json is None else "POST", url, params=params, json=json
            )
        except httpx.TransportError as exc:
            raise ProviderError(
                f"{self.name}'s {what} did not answer ({type(exc).__name__}); nothing was resent"
            ) from None
        if response.status_code != 200:
            meaning = (why or {}).get(response.status_code)
            raise ProviderError(
                f"{self.name}'s {what} answered {response.status_code}: "
                f"{self.error_message(response)}{f' ({meaning})' if meaning else ''}; "
                "nothing was resent"
            )
        try:
            return response.json()
        except ValueError:
            raise ProviderError(
                f"{self.name}'s {what} answered without JSON; nothing was resent"
            ) from None

    async def aclose(self) -> None:
        await self.client.aclose()
