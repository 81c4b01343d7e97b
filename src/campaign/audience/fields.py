"""Which merge fields an audience has: the core ones, and every extra CSV column stored.

A build asks, so that a misspelt `{{ frist_name }}` is a warning at its line rather
than an empty greeting for everyone. Only a campaign using a field beyond the core
ones reads the database, and a workspace without one has only the core fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, func, select, true
from sqlalchemy.exc import SQLAlchemyError

from campaign.audience.models import CORE_FIELDS
from campaign.audience.tables import subscribers
from campaign.config import Config
from campaign.db import connect
from campaign.errors import CampaignError

_SQLITE = "sqlite:///"


def stored_fields(engine: Engine) -> set[str]:
    """The names of the extra merge fields any subscriber has."""
    if engine.dialect.name == "postgresql":
        query = select(func.json_object_keys(subscribers.c.fields)).distinct()
    else:
        each = func.json_each(subscribers.c.fields).table_valued("key")
        query = select(each.c.key).select_from(subscribers).join(each, true()).distinct()
    with engine.connect() as connection:
        return {str(name) for name in connection.execute(query).scalars()}


def unknown_fields(config: Config, names: Iterable[str]) -> tuple[list[str], str | None]:
    """Of `names`, those no subscriber of the workspace has; and why they could not be
    checked, if the database could not be read (then none is called unknown)."""
    custom = sorted(set(names) - set(CORE_FIELDS))
    if not custom:
        return [], None
    url = config.database_url
    if url.startswith(_SQLITE) and not Path(url[len(_SQLITE) :]).is_file():
        return custom, None  # no database yet: nobody has any extra field
    try:
        known = stored_fields(connect(url))
    except (CampaignError, SQLAlchemyError) as exc:
        return [], f"merge fields not checked against the audience: {exc}"
    return [name for name in custom if name not in known], None
