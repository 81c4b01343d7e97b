"""Starting a workspace (`campaign init`) and seeing which layouts it uses.

A new organisation's workspace starts with its own details only: nothing here
proposes or writes another organisation's name, address, sender or web address.
The files are written so that an interrupted `init` can simply be run again:
campaign.toml, the mark of a workspace, is written last.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from campaign.config import CONFIG_FILE, SECRET_KEY_ENV, Config
from campaign.errors import UserError
from campaign.load import BUILTIN_LAYOUTS, LAYOUT_TEMPLATE, layouts, new_campaign
from campaign.preflight import address_problem, quoted_sender

FIRST_LAYOUT = "newsletter"
"""The built-in layout the first campaign of a new workspace is started from."""

GITIGNORE = (
    "/campaign.db",
    "/campaign.db-wal",
    "/campaign.db-shm",
    ".env",
    "/site/",
    "/outbox/",
    "/.campaign/",
)
"""What a workspace keeps out of git: the database (with SQLite's side files), the
secrets, what `campaign build` and the outbox provider write, and `.campaign/` (the build
cache, and the web server's spool of writes that met a busy database)."""

CONFIG_TEMPLATE = """\
# Workspace settings, written by `campaign init`; the README describes every one.
# Secrets (CAMPAIGN_SECRET_KEY, the mail service's API key) come from the
# environment or from .env, never from this file.

# Where `campaign serve` answers: every personal link and image in the emails
# points here, so your readers must reach it (https in production).
public_base_url = {public_url}
# For --at and send_at: an IANA name such as Europe/Berlin.
timezone = "UTC"

# Shown in every footer and on the public pages.
[organisation]
name = {organisation}
# The postal address: many laws require it in every email.
address = {address}
# website = "https://..."   # linked from the footer
# colour = "#1d4f91"        # the layout's accent colour

# Used when a campaign does not set its own.
[defaults]
from = {from_}
# reply_to = "..."

[database]
# Or postgresql://... (a password goes in CAMPAIGN_DATABASE_URL in .env instead).
url = "sqlite:///campaign.db"

# "outbox" writes .eml files to outbox/ and sends nothing: set your mail service
# and its settings here (README: "Mail services").
[provider]
name = "outbox"
"""

ENV_TEMPLATE = """\
# Secrets of this workspace: never commit this file (it is in .gitignore).
# Signs every personal link (unsubscribe, preferences, forward); the sender and
# `campaign serve` need the same value, and changing it breaks links already sent.
{name}={key}
"""


@dataclass(frozen=True)
class Organisation:
    """What `campaign init` asks for: who sends, from where, and where its pages live."""

    name: str
    address: str
    public_url: str
    from_: str


def check_text(value: str, what: str) -> str:
    """A required one-line value, trimmed."""
    text = value.strip()
    if not text:
        raise UserError(f"{what} must not be empty")
    if "\n" in text or "\r" in text:
        raise UserError(f"{what} must be on one line")
    return text


def check_from(value: str) -> str:
    """A sender that parses to exactly one address with a domain (`preflight.address_problem`,
    so a send never refuses what `init` wrote).

    An unquoted comma in the name (`Council, Colorado <news@example.org>`) would
    make two addresses and lose the sender, so it is refused with the quoted form.
    """
    text = check_text(value, "the From address")
    problem = address_problem(text)
    if problem is None:
        return text
    if problem.count != 1:
        hint = f" (quote the name: {quoted_sender(*problem.split)})" if problem.split else ""
        raise UserError(f"the From {text!r} is not one address{hint}")
    raise UserError(
        f"the From {text!r} has no valid address with a domain ({problem.reason}); "
        "write it as Name <address@domain>"
    )


def check_public_url(value: str) -> str:
    """An http(s) URL with a host, without a trailing slash."""
    text = check_text(value, "the public URL")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"the public URL {text!r} is not an http(s) address: "
            "give where `campaign serve` will answer, such as https://news.your-domain"
        )
    return text.rstrip("/")


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def check_new(folder: Path) -> Path:
    """`folder`, resolved, unless it already is a workspace (never overwritten)."""
    root = folder.resolve()
    if (root / CONFIG_FILE).exists():
        raise UserError(f"{root} is already a workspace (it has {CONFIG_FILE}); nothing changed")
    return root


def init_workspace(folder: Path, organisation: Organisation, today: dt.date | None = None) -> Path:
    """Make `folder` a workspace whose first campaign builds at once; return that campaign's folder.

    Refuses a folder that already holds campaign.toml. Existing .gitignore and .env
    files are kept and only completed, so `init` may run in an existing repository.
    """
    root = check_new(folder)
    root.mkdir(parents=True, exist_ok=True)
    _complete_gitignore(root / ".gitignore")
    _write_secret_key(root / ".env")
    (root / "layouts").mkdir(exist_ok=True)
    slug = f"{today or dt.date.today():%Y-%m}-newsletter"
    first = root / "campaigns" / slug
    if not first.exists():
        new_campaign(Config(workspace=root), slug, FIRST_LAYOUT)
    (root / CONFIG_FILE).write_text(
        CONFIG_TEMPLATE.format(
            public_url=_toml_string(organisation.public_url),
            organisation=_toml_string(organisation.name),
            address=_toml_string(organisation.address),
            from_=_toml_string(organisation.from_),
        ),
        encoding="utf-8",
    )
    return first


def _complete_gitignore(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [line for line in GITIGNORE if line not in lines]
    if missing:
        text = "\n".join([*lines, "# campaign: the database, secrets, built output", *missing])
        path.write_text(text.lstrip("\n") + "\n", encoding="utf-8")


def _write_secret_key(path: Path) -> None:
    """Add a new link-signing key to .env (readable by its owner only), unless it has one."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if any(line.strip().startswith(f"{SECRET_KEY_ENV}=") for line in text.splitlines()):
        return
    key = ENV_TEMPLATE.format(name=SECRET_KEY_ENV, key=secrets.token_urlsafe(32))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as env:
        env.write(("\n" if text and not text.endswith("\n") else "") + key)
    path.chmod(0o600)


@dataclass(frozen=True)
class LayoutEntry:
    """One layout as `campaign layouts` shows it."""

    name: str
    source: Literal["built-in", "workspace"]
    folder: Path
    overrides: bool
    """A workspace layout that replaces the built-in one of the same name."""


def layout_entries(config: Config) -> list[LayoutEntry]:
    """Every layout a campaign may name, with where the one in use comes from."""
    builtin = _builtin_layouts()
    return [
        LayoutEntry(name, "workspace", folder, name in builtin)
        if folder.parent == config.layouts_dir
        else LayoutEntry(name, "built-in", folder, False)
        for name, folder in layouts(config).items()
    ]


def _builtin_layouts() -> list[str]:
    return sorted(p.parent.name for p in BUILTIN_LAYOUTS.glob(f"*/{LAYOUT_TEMPLATE}"))


def copy_layout(config: Config, name: str) -> Path:
    """Copy built-in layout `name` into the workspace's layouts/, where it replaces the
    built-in one and can be changed; never over an existing folder."""
    if name not in _builtin_layouts():
        known = ", ".join(_builtin_layouts())
        raise UserError(f"there is no built-in layout {name!r} (built-in layouts: {known})")
    target = config.layouts_dir / name
    if target.exists():
        raise UserError(f"layouts/{name} already exists in {config.workspace}; nothing copied")
    shutil.copytree(BUILTIN_LAYOUTS / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
