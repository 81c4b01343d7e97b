"""The welcome email a list may send on confirmation: a campaign of the workspace, built
then and personalised like any send (the person's own links), outside the ledger."""

from __future__ import annotations

from campaign.audience.models import Recipient, Subscriber
from campaign.compile import build
from campaign.config import Config
from campaign.message import Message
from campaign.personalise import Personaliser
from campaign.send.ledger import new_send_id


def welcome_message(config: Config, slug: str, list_name: str, subscriber: Subscriber) -> Message:
    """The campaign `slug` for `subscriber`; a BuildError if it does not build."""
    personaliser = Personaliser.for_config(config, build(config, slug), list_name=list_name)
    recipient = Recipient.of(
        subscriber.id,
        subscriber.public_id,
        subscriber.email,
        subscriber.name,
        subscriber.first_name,
        subscriber.last_name,
        subscriber.fields,
    )
    return personaliser.message(recipient, new_send_id())
