"""The mailbox over IMAP (IMAPS or STARTTLS) or POP3, as one small interface.

IMAP moves each processed message to the processed folder, so a rerun never sees it
again; POP3, which has no folders, deletes it (its events are already recorded, once).
A message left unprocessed stays exactly where it was: over IMAP unread flag and all; a POP3
server may mark a message read once RETR sent it (dovecot does).
"""

from __future__ import annotations

import imaplib
import poplib
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol

from campaign.errors import UserError
from campaign.mailbox.settings import MailboxSettings

TIMEOUT = 60.0

# poplib gives up on a line longer than 2,048 bytes and then reads the rest of the message as
# replies, ending the whole pass, on every run; mail has longer lines (a bounce quoting an HTML
# newsletter whole). A line is never longer than its message, and hardly a mail server takes a
# message this long: the limit now only ends a reply that never ends. readline allocates as it
# reads.
poplib._MAXLINE = 100 * 2**20  # type: ignore[attr-defined]


class Mailbox(Protocol):
    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(key, raw bytes) of each message waiting."""
        ...

    def processed(self, key: str) -> None:
        """Take the message out of the waiting ones for good."""
        ...


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(response: tuple[str, Sequence[object]], doing: str) -> Sequence[object]:
    status, data = response
    if status != "OK":
        raise UserError(f"the mailbox refused to {doing}: {data!r}"[:300])
    return data


class IMAPMailbox:
    def __init__(self, connection: imaplib.IMAP4, settings: MailboxSettings) -> None:
        self.connection = connection
        self.settings = settings
        self.move = False
        """Whether the server moves in one step (RFC 6851); known once logged in."""

    def open(self) -> None:
        capabilities = _check(self.connection.capability(), "list its capabilities")
        self.move = any(isinstance(c, bytes) and b"MOVE" in c.split() for c in capabilities)
        self.connection.create(_quote(self.settings.processed_folder))  # NO when it exists
        _check(self.connection.select(_quote(self.settings.folder)), f"open {self.settings.folder}")

    def messages(self) -> Iterator[tuple[str, bytes]]:
        data = _check(self.connection.uid("SEARCH", "ALL"), "list the messages")
        uids = data[0].decode().split() if isinstance(data[0], bytes) else []
        for uid in uids:
            fetched = _check(self.connection.uid("FETCH", uid, "(BODY.PEEK[])"), "fetch a message")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if isinstance(raw, bytes):
                yield uid, raw

    def processed(self, key: str) -> None:
        folder = _quote(self.settings.processed_folder)
        if self.move:
            _check(self.connection.uid("MOVE", key, folder), "move a processed message")
            return
        _check(self.connection.uid("COPY", key, folder), "copy a processed message")
        _check(self.connection.uid("STORE", key, "+FLAGS", "(\\Deleted)"), "flag a message")
        self.connection.expunge()


class POP3Mailbox:
    def __init__(self, connection: poplib.POP3) -> None:
        self.connection = connection

    def messages(self) -> Iterator[tuple[str, bytes]]:
        count, _size = self.connection.stat()
        for number in range(1, count + 1):
            _response, lines, _octets = self.connection.retr(number)
            yield str(number), b"\r\n".join(lines) + b"\r\n"

    def processed(self, key: str) -> None:
        self.connection.dele(int(key))


def _context(settings: MailboxSettings, workspace: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=str(workspace / Path(settings.ca_file).expanduser()))
    return context


@contextmanager
def open_mailbox(
    settings: MailboxSettings, username: str, password: str, workspace: Path
) -> Iterator[Mailbox]:
    """The mailbox, logged in over TLS; a UserError says what went wrong (never the password)."""
    context = _context(settings, workspace)
    where = f"{settings.protocol} {settings.host}:{settings.effective_port}"
    try:
        if settings.protocol == "imap":
            with _imap(settings, context) as imap:
                _imap_login(imap, username, password)
                mailbox = IMAPMailbox(imap, settings)
                mailbox.open()
                yield mailbox
        else:
            pop = _pop3(settings, context)
            try:
                pop.user(username)
                pop.pass_(password)
                yield POP3Mailbox(pop)
            except BaseException:
                # QUIT still commits what was recorded; on a broken or out-of-step connection
                # it fails too, and that must not hide why the pass stopped.
                with suppress(poplib.error_proto, OSError):
                    pop.quit()
                raise
            pop.quit()  # QUIT commits the deletions
    except (imaplib.IMAP4.error, poplib.error_proto) as exc:
        raise UserError(f"the mailbox at {where} refused: {_reply(exc)}"[:300]) from None
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"could not reach the mailbox at {where}: {exc}"[:300]) from None


def _reply(exc: Exception) -> str:
    """The server's reply as it wrote it (imaplib and poplib raise it as bytes)."""
    said = exc.args[0] if exc.args else ""
    return said.decode(errors="replace") if isinstance(said, bytes) else str(said)


def _imap(settings: MailboxSettings, context: ssl.SSLContext) -> imaplib.IMAP4:
    port = settings.effective_port
    if settings.security == "tls":
        return imaplib.IMAP4_SSL(settings.host, port, ssl_context=context, timeout=TIMEOUT)
    imap = imaplib.IMAP4(settings.host, port, timeout=TIMEOUT)
    imap.starttls(context)
    return imap


def _imap_login(imap: imaplib.IMAP4, username: str, password: str) -> None:
    """LOGIN, or SASL PLAIN for a login beyond ASCII: imaplib sends LOGIN's arguments as
    ASCII only, where PLAIN carries UTF-8 (RFC 4616), as POP3's PASS does in poplib."""
    if f"{username}{password}".isascii():
        _check(imap.login(username, password), "log in")
        return
    plain = f"\0{username}\0{password}".encode()
    _check(imap.authenticate("PLAIN", lambda _challenge: plain), "log in")


def _pop3(settings: MailboxSettings, context: ssl.SSLContext) -> poplib.POP3:
    port = settings.effective_port
    if settings.security == "tls":
        return poplib.POP3_SSL(settings.host, port, context=context, timeout=TIMEOUT)
    pop = poplib.POP3(settings.host, port, timeout=TIMEOUT)
    pop.stls(context)
    return pop
