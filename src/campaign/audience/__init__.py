"""The audience: subscribers, lists, topics and suppressions (SQLite or PostgreSQL).

    store = Store.open(config)
    for recipient in store.recipients("newsletter", topics=["events"]):
        ...   # keyset order, flat memory; only people who may be mailed

Every unsubscribe, bounce and complaint goes through the store, which suppresses
the address (by its hash) so no later import or send can reach it again.
"""

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
