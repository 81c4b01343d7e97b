"""Messages personalised per second for the example newsletter, on one core.

    .venv/bin/python bench/personalise.py [--count 20000]

Three ways to make each recipient's message from the compiled campaign:
  message   campaign.personalise: split once, join per recipient, sign the links
            (what most HTTP API providers get);
  + MIME    the same plus the RFC 5322 bytes from parts encoded once per campaign
            (what the outbox and SMTP get);
  + JSON    the same plus the bodies as JSON strings from parts escaped once per
            campaign (what Postmark gets);
  personal  + MIME for the example given a greeting and a personal subject,
            `{{ first_name | default("friend") }}` (every tenth recipient has no first
            name, so gets the fallback);
  naive     str.replace per placeholder and an email.message.EmailMessage built and
            serialised per recipient: the approach this module exists to avoid.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from _report import emit  # noqa: E402

from campaign.audience.models import Recipient  # noqa: E402
from campaign.compile import build  # noqa: E402
from campaign.compiled import Compiled  # noqa: E402
from campaign.config import load_config  # noqa: E402
from campaign.links import Links  # noqa: E402
from campaign.personalise import Personaliser  # noqa: E402
from campaign.placeholders import field  # noqa: E402


def recipients(count: int) -> list[Recipient]:
    return [
        Recipient(
            id=i,
            public_id=f"pUbLiC{i:010d}xyz",
            email=f"person{i}@example.org",
            name=f"Person {i}",
            fields={
                "email": f"person{i}@example.org",
                "name": f"Person {i}",
                "first_name": "" if i % 10 == 0 else "Person",
                "last_name": str(i),
            },
        )
        for i in range(count)
    ]


def naive(compiled: Compiled, links: Links) -> Callable[[Recipient, str], bytes]:
    def make(recipient: Recipient, send_id: str) -> bytes:
        html, text = compiled.html, compiled.text
        values = {"link:view": links.view_url(compiled.slug)}
        for purpose in ("forward", "preferences", "unsubscribe"):
            values[f"link:{purpose}"] = links.url(purpose, recipient.public_id, compiled.slug)  # type: ignore[arg-type]
        for name, value in recipient.fields.items():
            values[f"field:{name}"] = value
        for key, value in values.items():
            html = html.replace("{{{" + key + "}}}", value)
            text = text.replace("{{{" + key + "}}}", value)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (
            compiled.from_,
            recipient.email,
            compiled.subject,
        )
        message["List-Unsubscribe"] = f"<{values['link:unsubscribe']}>"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message.as_bytes()

    return make


def personal(compiled: Compiled) -> Compiled:
    """The example with a greeting and the first name in the subject, as many newsletters have."""
    name = field("first_name", "friend")
    return compiled.model_copy(
        update={
            "subject": f"{name}, {compiled.subject}",
            "html": compiled.html.replace("<p>", f"<p>Dear {name},</p><p>", 1),
            "text": f"Dear {name},\n\n{compiled.text}",
        }
    )


def measure(label: str, make: Callable[[Recipient, str], object], people: list[Recipient]) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    for n, recipient in enumerate(people):
        make(recipient, f"{n:032x}")
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"{label:10} {len(people):>7,} messages: {len(people) / used:>9,.0f} per CPU second ({len(people) / elapsed:,.0f}/s wall)"
    )
    emit(
        "personalise",
        f"{label} (per CPU second)",
        len(people) / used,
        "messages/s",
        better="higher",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("campaign.toml", "campaigns", "layouts"):
            source = REPO / folder
            (shutil.copytree if source.is_dir() else shutil.copy)(source, Path(tmp) / folder)
        config = load_config(Path(tmp), environ={"CAMPAIGN_SECRET_KEY": "bench-secret-key"})
        compiled = build(config, "2018-11-wsr-primer")
    print(
        f"{compiled.slug}: HTML {len(compiled.html) / 1024:.0f} KB, text {len(compiled.text) / 1024:.0f} KB"
    )
    people = recipients(args.count)
    plain = Personaliser.for_config(config, compiled, list_name="newsletter")
    mime = Personaliser.for_config(config, compiled, list_name="newsletter", raw=True)
    json = Personaliser.for_config(config, compiled, list_name="newsletter", json=True)
    measure("message", plain.message, people)
    measure("+ MIME", mime.message, people)
    measure("+ JSON", json.message, people)
    greeted = Personaliser.for_config(config, personal(compiled), list_name="newsletter", raw=True)
    measure("personal", greeted.message, people)
    links = Links(config.secret_key, config.public_base_url)
    measure("naive", naive(compiled, links), people[: max(1, args.count // 40)])


if __name__ == "__main__":
    main()
