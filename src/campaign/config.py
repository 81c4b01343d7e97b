"""Workspace settings: campaign.toml, plus secrets from the environment (and .env).

A workspace is a folder holding campaign.toml, campaigns/ and layouts/ (`campaign
init` makes one). The commands need campaign.toml, so none of them writes a
database or output into a folder that is not a workspace; the settings it leaves
out have defaults. Secrets never live in campaign.toml: they are read from the
environment, or from a .env file beside campaign.toml, and are never printed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from campaign.errors import ConfigError, Location
from campaign.mailbox.settings import MailboxSettings
from campaign.signup.settings import ListSettings, SignupSettings
from campaign.signup.texts import LANGUAGES

CONFIG_FILE = "campaign.toml"
CAMPAIGN_FILE = "campaign.yaml"
"""In each campaign's folder (read by campaign.load; here, so that finding campaigns does not
import the models that read them)."""
SECRET_KEY_ENV = "CAMPAIGN_SECRET_KEY"
DATABASE_URL_ENV = "CAMPAIGN_DATABASE_URL"
WORKSPACE_ENV = "CAMPAIGN_WORKSPACE"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Organisation(_Section):
    """Who sends: shown in every footer (the postal address is required by law in many places)."""

    name: str = "Example Organisation"
    address: str = "1 Example Street, Springfield"
    website: str | None = None
    colour: str = "#1d4f91"
    disclaimer: str | None = Field(default=None, description="Footer disclaimer, Markdown.")
    copyright_holder: str | None = Field(
        default=None, description="Named in the copyright line; default: the name."
    )
    social: dict[str, str] = Field(
        default_factory=dict,
        description='Profiles for the `social` block, label = URL: Mastodon = "https://..."',
    )


class Defaults(_Section):
    """Sender defaults, used when a campaign does not set its own."""

    from_: str = Field(default="Example Organisation <newsletter@example.org>", alias="from")
    reply_to: str | None = None


class Database(_Section):
    url: str = "sqlite:///campaign.db"


class ProviderSettings(BaseModel):
    """`[provider]`: `name` picks the mail service; the other keys are that service's options."""

    model_config = ConfigDict(extra="allow")

    name: str = "outbox"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SendSettings(_Section):
    """Knobs of the send engine."""

    batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Messages per provider call; default: the provider's maximum.",
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Provider calls in flight at once."
    )
    rate_limit: float = Field(default=0, ge=0, description="Messages per second; 0 means no limit.")
    max_attempts: int = Field(
        default=5, ge=1, description="Tries per message before it is failed for good."
    )
    backoff_seconds: float = Field(
        default=1.0, gt=0, description="First retry delay; doubles each time."
    )
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    max_consecutive_failures: int = Field(
        default=50, ge=1, description="Pause the send after this many failures in a row."
    )
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A sender silent this long is dead: the next run takes its send over.",
    )
    list_id: str | None = Field(
        default=None, description="List-Id header; default derived from the sender's domain."
    )
    unsubscribe_mailto: str | None = Field(
        default=None, description="Address added to List-Unsubscribe as a mailto."
    )


class ScheduleSettings(_Section):
    grace_hours: float = Field(
        default=6.0, ge=0, description="A schedule missed by longer than this is not sent late."
    )


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    token_max_age_days: int | None = Field(
        default=None, ge=1, description="Links older than this are refused; none: never expire."
    )
    forward_per_subscriber_per_hour: int = 5
    forward_per_ip_per_hour: int = 20


class AssetSettings(_Section):
    """`[assets]`: where the images of sent emails live."""

    base_url: str | None = Field(
        default=None,
        description="A CDN or bucket holding assets/ (default: `campaign serve` at public_base_url).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else None


class Config(_Section):
    """Everything a command needs to know about the workspace. Built by `load_config`."""

    workspace: Path = Field(default_factory=Path.cwd, exclude=True)
    organisation: Organisation = Organisation()
    public_base_url: str = "http://127.0.0.1:8000"
    timezone: str = "UTC"
    track_clicks: Literal["off", "aggregate", "per-subscriber"] = "off"
    """Click tracking through signed redirects on `campaign serve` (see campaign.clicks)."""
    track_opens: bool = False
    language: str = Field(default="en", description=f"Of the signup pages: {', '.join(LANGUAGES)}.")
    defaults: Defaults = Defaults()
    database: Database = Database()
    provider: ProviderSettings = ProviderSettings()
    send: SendSettings = SendSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    web: WebSettings = WebSettings()
    assets: AssetSettings = AssetSettings()
    mailbox: MailboxSettings | None = None
    signup: SignupSettings = SignupSettings()
    lists: dict[str, ListSettings] = Field(
        default_factory=dict, description="[lists.<name>]: lists with a hosted signup form."
    )
    segments: dict[str, str] = Field(
        default_factory=dict,
        description="Saved segments, name = condition: pueblo = \"city = 'Pueblo'\"",
    )
    env: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"no signup texts in {value!r} (languages: {', '.join(LANGUAGES)})")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def assets_url(self) -> str:
        """Where image URLs point: `[assets] base_url`, else `campaign serve`'s /assets."""
        return self.assets.base_url or f"{self.public_base_url}/assets"

    @property
    def campaigns_dir(self) -> Path:
        return self.workspace / "campaigns"

    @property
    def layouts_dir(self) -> Path:
        return self.workspace / "layouts"

    @property
    def database_url(self) -> str:
        """The database URL; a relative SQLite path is taken relative to the workspace."""
        url = self.env.get(DATABASE_URL_ENV) or self.database.url
        prefix = "sqlite:///"
        if (
            url.startswith(prefix)
            and not url.startswith(prefix + "/")
            and url != prefix + ":memory:"
        ):
            return prefix + str(self.workspace / url[len(prefix) :])
        return url

    def secret(self, name: str, purpose: str) -> str:
        """A secret from the environment (or .env); a clear error names the variable if unset."""
        value = self.env.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"{purpose} needs the environment variable {name} (set it, or put it in .env)"
            )
        return value

    @property
    def secret_key(self) -> str:
        """The key that signs every link; changing it invalidates links already sent."""
        return self.secret(SECRET_KEY_ENV, "signing subscriber links")


def find_workspace(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` holding campaign.toml, else `start` itself."""
    if env_dir := os.environ.get(WORKSPACE_ENV):
        return Path(env_dir).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


def require_workspace(workspace: Path | None = None) -> Path:
    """The workspace a command works in: `workspace`, else $CAMPAIGN_WORKSPACE, else the
    nearest folder with campaign.toml; a clear error when it has no campaign.toml."""
    root = find_workspace() if workspace is None else workspace.resolve()
    if not (root / CONFIG_FILE).is_file():
        named = (
            "named by --workspace"
            if workspace is not None
            else f"named by {WORKSPACE_ENV}"
            if os.environ.get(WORKSPACE_ENV)
            else "here or in any folder above"
        )
        raise ConfigError(
            f"no {CONFIG_FILE} in {root} ({named}): this command works in a workspace. "
            f"Start one with `campaign init`, or name one with --workspace DIR"
        )
    return root


def load_config(workspace: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read campaign.toml (if any), .env (if any) and the environment into a validated Config."""
    root = find_workspace() if workspace is None else workspace.resolve()
    path = root / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"TOML syntax error: {exc}", Location(path)) from None
        except UnicodeDecodeError:
            raise ConfigError("not valid UTF-8", Location(path)) from None
    env = (
        {k: v for k, v in dotenv_values(root / ".env").items() if v is not None}
        if (root / ".env").is_file()
        else {}
    )
    env.update(os.environ if environ is None else environ)
    try:
        config = Config.model_validate({**data, "workspace": root, "env": env})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(problems, Location(path)) from None
    if config.segments:
        from campaign.audience.choice import check_saved  # imports the database tables

        check_saved(config.segments, path)
    return config
