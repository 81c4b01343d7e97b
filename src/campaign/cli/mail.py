"""Commands for mail that comes back or must be trusted: mailbox (bounces, complaints and
unsubscribes that arrive by mail) and dkim (the DNS record for SMTP senders)."""

from __future__ import annotations

from campaign.cli.app import app, console, get_config


@app.command("dkim")
def dkim_command() -> None:
    """Print the DKIM DNS record for [provider.dkim] (making the key file if there is none).

    Publish it as a TXT record; `campaign send` through the smtp provider then signs every
    message with the key.
    """
    from campaign.dkim_signer import dns_record_for

    record = dns_record_for(get_config())
    if record.made_key:
        console.print(
            f"Made a new 2048-bit key in {record.key_file} (keep it private, back it up).",
            markup=False,
            soft_wrap=True,
        )
    console.print(f"Publish this TXT record at {record.name}:", markup=False, soft_wrap=True)
    console.print(record.value, markup=False, soft_wrap=True)
    console.print("As a zone-file line:", markup=False)
    console.print(record.zone_line, markup=False, soft_wrap=True)
