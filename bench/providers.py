"""How fast each batch provider turns personalised messages of the example into its request.

    .venv/bin/python bench/providers.py [--recipients 5000]

Builds the example campaign once, personalises N recipients with the real
Personaliser, then times per provider `adapt` (its limits and escapes), the check for
its template syntax (services that substitute) and `build_request` over its largest batch
(Mailgun, SendGrid: the shared body recovered and its slots filled by the service;
SES: 50 per SendBulkEmail; Resend, Brevo: a body per recipient; Mandrill: one per
call), and prints messages per second and request bytes per recipient. No network:
requests are built, not sent. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign.compile import build
from campaign.config import load_config
from campaign.personalise import Personaliser
from campaign.providers.brevo import BrevoProvider
from campaign.providers.mailgun import MailgunProvider
from campaign.providers.mandrill import MandrillProvider
from campaign.providers.resend import ResendProvider
from campaign.providers.sendgrid import SendGridProvider
from campaign.providers.ses import SESProvider
from campaign.providers.substituting import SubstitutingProvider

REPO = Path(__file__).resolve().parent.parent
ENV = {
    "CAMPAIGN_SECRET_KEY": "bench",
    "MAILGUN_API_KEY": "k",
    "SENDGRID_API_KEY": "k",
    "AWS_ACCESS_KEY_ID": "k",
    "AWS_SECRET_ACCESS_KEY": "k",
    "RESEND_API_KEY": "k",
    "BREVO_API_KEY": "k",
    "MANDRILL_API_KEY": "k",
}


@dataclass
class Reader:
    public_id: str
    email: str
    name: str
    fields: dict[str, Any] = field(default_factory=dict)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=5000)
    count = parser.parse_args().recipients
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            REPO, environ={**ENV, "CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp}/b.db"}
        )
        compiled = build(config, "2018-11-wsr-primer")
    personaliser = Personaliser.for_config(config, compiled, list_name="newsletter")
    readers = [
        Reader(f"pid{i:07d}", f"reader{i}@example.org", f"Reader {i}", {"first_name": f"Reader{i}"})
        for i in range(count)
    ]
    started = time.perf_counter()
    messages = [personaliser.message(r, f"send-{i:07d}") for i, r in enumerate(readers)]
    made = time.perf_counter() - started
    print(
        f"example: {len(compiled.html):,} bytes of HTML; personalised {count:,} in {made:.2f}s ({count / made:,.0f}/s)"
    )
    for cls, options in (
        (MailgunProvider, {"domain": "mg.example.org"}),
        (SendGridProvider, {}),
        (SESProvider, {}),
        (ResendProvider, {}),
        (BrevoProvider, {}),
        (MandrillProvider, {}),
    ):
        provider = cls(options, ENV)
        size = cls.max_batch
        started = time.perf_counter()
        total_bytes = 0
        for start in range(0, count, size):
            batch = [provider.adapt(m) for m in messages[start : start + size]]
            if isinstance(provider, SubstitutingProvider):
                batch = [m for m in batch if not provider.holds_syntax(m)]
            request = provider.build_request(batch)
            total_bytes += len(request.read())
        elapsed = time.perf_counter() - started
        print(
            f"{cls.name:9} batch {size:5}: {count / elapsed:10,.0f} messages/s built; "
            f"{total_bytes / count:9,.0f} request bytes per recipient"
        )


if __name__ == "__main__":
    main()
