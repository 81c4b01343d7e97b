"""The audience: subscribers, lists, topics and suppressions (SQLite or PostgreSQL).

    store = Store.open(config)
    for recipient in store.recipients("newsletter", topics=["events"]):
        ...   # keyset order, flat memory; only people who may be mailed

Every unsubscribe, bounce and complaint goes through the store, which suppresses
the address (by its hash) so no later import or send can reach it again.

Its names are imported on first use: the tables (audience/tables.py), which every part
of the database needs, come without the store and the address validation.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaign.audience.models import (
        Recipient,
        Subscriber,
        checked_email,
        email_hash,
        normalise_email,
    )
    from campaign.audience.store import Store

__all__ = [
    "Recipient",
    "Store",
    "Subscriber",
    "checked_email",
    "email_hash",
    "normalise_email",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        home = "store" if name == "Store" else "models"
        return getattr(import_module(f"campaign.audience.{home}"), name)
    raise AttributeError(f"module 'campaign.audience' has no attribute {name!r}")
