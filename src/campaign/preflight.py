"""Preflight: what must be right before anything leaves, checked the same way for a
send, a schedule (`send --at`), a test send and `send --dry-run`.

    report = await preflight(config, compiled, folder, engine=engine)
    print(report.heading, *report.checks, sep="\n")
    report.raise_for_errors()   # PreflightError: nothing is sent

Each problem names the line of campaign.yaml or campaign.toml that set the value.
The outbox writes files and mails no one, so what only matters for real mail
(an example domain, a placeholder organisation) is a warning there, an error elsewhere.
The sender checks (`sender_problems`) also run in the build, at the same lines.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from campaign import placeholders
from campaign.compiled import Asset, Compiled
from campaign.config import CONFIG_FILE, Config, Defaults, Organisation
from campaign.errors import Location, UserError
from campaign.load import YamlFile, read_yaml

if TYPE_CHECKING:  # the build imports this module: no database layer, no HTTP client
    import httpx
    from sqlalchemy import Engine

Level = Literal["ok", "warning", "error"]

PLACEHOLDERS = frozenset(
    {
        Organisation.model_fields["name"].default,
        Organisation.model_fields["address"].default,
        Defaults.model_fields["from_"].default,
        "Example Organisation",
        "1 Example Street, Springfield",
    }
)
"""Sender details that stand in for the real ones: the defaults of campaign.toml."""

_RESERVED = ("example.org", "example.com", "example.net", "example", "test", "invalid", "localhost")
"""Names that never reach anyone: they and their subdomains."""
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x85]")

_TOML_KEYS = {
    "from": ("defaults", "from"),
    "reply_to": ("defaults", "reply_to"),
    "public_base_url": ("", "public_base_url"),
    "organisation.name": ("organisation", "name"),
    "organisation.address": ("organisation", "address"),
    "assets.base_url": ("assets", "base_url"),
}
"""Where a setting lives in campaign.toml: (table, key)."""


@dataclass(frozen=True)
class Check:
    """One preflight finding: what was checked, and how it came out."""

    level: Level
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.level}: {self.message}"


class PreflightError(UserError):
    """Preflight found errors: nothing was sent."""

    def __init__(self, errors: list[Check]) -> None:
        self.errors = errors
        super().__init__("not sent: " + "; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.level == "error"]

    @property
    def heading(self) -> str:
        """The line above the checks: ok, or how many errors stop the send."""
        count = len(self.errors)
        return f"preflight: {count} error{'s' if count != 1 else ''}" if count else "preflight: ok"

    def raise_for_errors(self) -> None:
        if self.errors:
            raise PreflightError(self.errors)


def is_example_host(host: str) -> bool:
    """localhost, loopback, or a domain reserved for examples and tests (RFC 2606, RFC 6761)."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return any(host == name or host.endswith("." + name) for name in _RESERVED)
    return address.is_loopback or address.is_unspecified


def toml_location(config: Config, key: str) -> Location:
    """The line of campaign.toml that sets `key` (see _TOML_KEYS); the file when it is unset."""
    table, name = _TOML_KEYS[key]
    path = config.workspace / CONFIG_FILE
    if not path.is_file():
        return Location(CONFIG_FILE)
    current = ""
    setting = re.compile(rf"""^\s*(?:{re.escape(name)}|"{re.escape(name)}")\s*=""")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        header = re.match(r"^\s*\[([^\[\]]+)\]\s*(?:#.*)?$", line)
        if header:
            current = header.group(1).strip()
        elif current == table and setting.match(line):
            return Location(CONFIG_FILE, number)
    return Location(CONFIG_FILE)


class Sources:
    """Where each sender detail was set: campaign.yaml's line when the campaign sets it,
    else campaign.toml's (or the file, for a default)."""

    def __init__(self, config: Config, campaign: YamlFile | None) -> None:
        self.config = config
        self.campaign = campaign

    def in_yaml(self, key: str) -> bool:
        """Whether campaign.yaml sets `key` (else campaign.toml, or its default, is used)."""
        data = self.campaign.data if self.campaign is not None else None
        return isinstance(data, dict) and data.get(key) is not None

    def where(self, key: str) -> Location | None:
        """campaign.yaml's line, else campaign.toml's; None when neither is known."""
        if self.campaign is not None and self.in_yaml(key):
            return self.campaign.text_location(key)
        return toml_location(self.config, key) if key in _TOML_KEYS else None

    @classmethod
    def of(cls, config: Config, folder: Path | None) -> Sources:
        path = folder / "campaign.yaml" if folder is not None else None
        if path is None or not path.is_file():
            return cls(config, None)
        return cls(config, read_yaml(path, config.workspace))


@dataclass(frozen=True)
class AddressProblem:
    """Why a From or Reply-To value is not exactly one address with a domain."""

    count: int
    """How many addresses the value reads as."""
    address: str = ""
    """The one address it reads as, when it reads as one."""
    reason: str = ""
    """Why that one address is not valid (email_validator's words)."""
    split: tuple[str, str] | None = None
    """(name, address) when an unquoted comma in the name is what splits the value."""


def address_problem(value: str) -> AddressProblem | None:
    """The one check of a sender (`campaign init`, the build, preflight): None when `value`
    parses to exactly one valid address with a domain."""
    parsed = getaddresses([value])
    if len(parsed) == 1:
        try:
            validate_email(parsed[0][1], check_deliverability=False)
        except EmailNotValidError as exc:
            return AddressProblem(1, parsed[0][1], str(exc))
        return None
    match = re.fullmatch(r"\s*(.*?)\s*<([^<>]+@[^<>]+)>\s*", value)
    if match and "," in match.group(1):
        return AddressProblem(len(parsed), split=(match.group(1).strip('"'), match.group(2)))
    return AddressProblem(len(parsed))


def _escaped(text: str) -> str:
    """`text` inside double quotes, in a From value as in TOML."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def quoted_sender(name: str, address: str) -> str:
    """`"name" <address>`: a From value whose name may hold a comma."""
    return f'"{_escaped(name)}" <{address}>'


def _address_message(problem: AddressProblem, value: str, key: str, in_yaml: bool) -> str:
    """`problem` said for the file that sets `key`: with the quoted line to write there."""
    if problem.split:
        quoted = quoted_sender(*problem.split)
        assign = (
            f"{key}: '" + quoted.replace("'", "''") + "'"
            if in_yaml
            else f'{key} = "{_escaped(quoted)}"'
        )
        return (
            f"{key} {value!r} reads as {problem.count} addresses: a comma in a name splits it. "
            f"Quote the name: {assign}"
        )
    if "@" in problem.address:
        return f"{key} {value!r}: {problem.address!r} is not an email address: {problem.reason}"
    return f"{key} {value!r} is not one address with a domain, such as: News <news@your-domain.org>"


def sender_problems(
    sources: Sources,
    *,
    from_: str,
    reply_to: str | None,
    subject: str,
    preheader: str | None,
) -> list[Check]:
    """The checks of the header values that hold for any provider: From and Reply-To each
    one address with a domain, subject and preheader on one line."""
    found: list[Check] = []
    values = {"from": from_, "reply_to": reply_to, "subject": subject, "preheader": preheader}
    for key, value in values.items():
        if value is None:
            continue
        where = sources.where(key)
        if key in ("from", "reply_to"):
            problem = address_problem(value)
            found.append(
                Check("error", _address_message(problem, value, key, sources.in_yaml(key)), where)
                if problem
                else Check("ok", f"{key}: {value}")
            )
        elif _LINE_BREAK.search(value):
            found.append(
                Check(
                    "error",
                    f"the {key} holds a line break, which mail services refuse: write it on one "
                    "line (a `|` or `>` block keeps its last line break)",
                    where,
                )
            )
        elif key == "subject":
            found.append(Check("ok", f"subject: {placeholders.shown(value)}"))
    return found


def _real(config: Config) -> bool:
    """Whether messages can reach real people: every provider but the outbox."""
    return config.provider.name != "outbox"


def _mail_domain(value: str) -> str:
    parsed = getaddresses([value])
    return parsed[0][1].rpartition("@")[2] if len(parsed) == 1 else ""


def real_mail_problems(config: Config, compiled: Compiled, sources: Sources) -> list[Check]:
    """What is fine for the outbox (a warning) but must not reach real mail (an error):
    an example or loopback public URL, example sender domains, placeholder organisation."""
    level: Level = "error" if _real(config) else "warning"
    unless = "" if _real(config) else " (fine for the outbox; a real provider refuses it)"
    found: list[Check] = []
    url = urlsplit(config.public_base_url)
    if url.scheme != "https" or is_example_host(url.hostname or ""):
        found.append(
            Check(
                level,
                f"public_base_url {config.public_base_url} must be your site's https:// address: "
                f"unsubscribe links need HTTPS (RFC 8058) and must reach you{unless}",
                toml_location(config, "public_base_url"),
            )
        )
    else:
        found.append(Check("ok", f"public URL: {config.public_base_url}"))
    for key, value in (("from", compiled.from_), ("reply_to", compiled.reply_to)):
        domain = _mail_domain(value or "")
        if value and (value in PLACEHOLDERS or (domain and is_example_host(domain))):
            found.append(
                Check(level, f"{key} {value!r} is an example address{unless}", sources.where(key))
            )
    for name, value, why in (
        ("name", config.organisation.name, "who sends it"),
        ("address", config.organisation.address, "the postal address the law asks for"),
    ):
        if not value.strip() or value in PLACEHOLDERS:
            what = "is not set" if not value.strip() else f"is the placeholder {value!r}"
            found.append(
                Check(
                    level,
                    f"[organisation] {name} {what}: every email shows {why}{unless}",
                    toml_location(config, f"organisation.{name}"),
                )
            )
    return found


async def _unreachable(urls: list[str], transport: httpx.AsyncBaseTransport | None) -> list[str]:
    """The URLs that do not answer 2xx to HEAD (or to GET, for hosts that refuse HEAD)."""
    import httpx

    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(10.0), follow_redirects=True
    ) as client:

        async def fails(url: str) -> bool:
            try:
                response = await client.head(url)
                if response.status_code in (403, 405, 501):
                    response = await client.get(url)
            except httpx.HTTPError:
                return True
            return not response.is_success

        answers = await asyncio.gather(*(fails(url) for url in urls))
    return [url for url, failed in zip(urls, answers, strict=True) if failed]


async def asset_problems(
    config: Config,
    assets: tuple[Asset, ...],
    engine: Engine,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Check]:
    """Every image answers where its URL points: at `[assets] base_url` (asked now), or
    in the database (stored when the send begins, from the file the build read)."""
    if not assets:
        return []
    if config.assets.base_url:
        missing = await _unreachable(
            [a.url for a in assets if a.url.startswith(config.assets.base_url)], transport
        )
        if missing:
            names = ", ".join(url.rsplit("/", 1)[-1] for url in missing)
            return [
                Check(
                    "error",
                    f"{len(missing)} of {len(assets)} images do not answer at {config.assets.base_url}: "
                    f"{names}. Upload site/<campaign>/assets/ there (campaign build writes it)",
                    toml_location(config, "assets.base_url"),
                )
            ]
        return [Check("ok", f"{len(assets)} images answer at {config.assets.base_url}")]
    found = await asyncio.to_thread(_unstorable, engine, assets)
    if not found:
        found.append(
            Check("ok", f"{len(assets)} images, served by `campaign serve` at {config.assets_url}/")
        )
    return found


def _unstorable(engine: Engine, assets: tuple[Asset, ...]) -> list[Check]:
    """The images neither stored yet nor readable as the build read them."""
    from campaign.assets import stored_names

    stored = stored_names(engine, (a.name for a in assets))
    found: list[Check] = []
    for asset in assets:
        if asset.name not in stored:
            try:
                asset.read()
            except UserError as exc:
                found.append(Check("error", exc.message, exc.location))
    return found


async def preflight(
    config: Config,
    compiled: Compiled,
    folder: Path | None,
    *,
    engine: Engine,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Report:
    """Every check, in the order a reader fixes them. `folder` is the campaign's folder
    (for campaign.yaml's lines), `transport` carries the HTTP checks of `[assets] base_url`."""
    sources = Sources.of(config, folder)
    checks = [
        *sender_problems(
            sources,
            from_=compiled.from_,
            reply_to=compiled.reply_to,
            subject=compiled.subject,
            preheader=compiled.preheader,
        ),
        *real_mail_problems(config, compiled, sources),
        *await asset_problems(config, compiled.assets, engine, transport),
    ]
    return Report(tuple(checks))
