"""Commands for mail that comes back or must be trusted: mailbox (bounces, complaints and
unsubscribes that arrive by mail) and dkim (the DNS record for SMTP senders)."""

from __future__ import annotations

from campaign.cli.app import app, console, get_config


@app.command("dkim")
def dkim_command() -> None:
    r"""Print the DKIM DNS record for \[provider.dkim] (making the key file if there is none).

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


@app.command("mailbox")
def mailbox_command() -> None:
    """Read the bounce mailbox once: bounces, feedback reports, unsubscribe requests. For cron.

    Each message read is moved to [mailbox] processed_folder (POP3: deleted), so a rerun
    never counts it twice; one it cannot read or trust is left where it is and listed.
    Prints nothing when the mailbox is empty.
    """
    from campaign.mailbox.reader import read_mailbox

    report = read_mailbox(
        get_config(), log=lambda line: console.print(line, markup=False, soft_wrap=True)
    )
    if report.read:
        console.print(
            f"{report.read} messages: {report.recorded} events recorded, "
            f"{report.replayed} already recorded, {len(report.left)} left in the mailbox",
            markup=False,
            soft_wrap=True,
        )
