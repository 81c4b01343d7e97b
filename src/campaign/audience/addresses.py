"""Email addresses, one way everywhere: import, forms, webhooks, unsubscribe, delete, show, sends.

An address has one stored form: trimmed, NFC, lowercased, its domain in Unicode
(IDNA-decoded), so `juergen@exämple.org` and `juergen@xn--exmple-cua.org` are one
subscriber with one hash whichever form a user, a file or a mail service gives.
`normalise()` never refuses (a webhook's or a user's lookup must still find its
match); `checked()` is the one validation, for anything about to be stored or mailed.
On the wire, `transport()` gives the ASCII form (the domain in punycode), for every
sender and provider; a non-ASCII local part has no ASCII form and needs a server that
speaks SMTPUTF8.
"""

from __future__ import annotations

import unicodedata

import idna


class InvalidAddress(ValueError):
    """Not a usable address; the message says why, for a person to act on."""


class NeedsSMTPUTF8(InvalidAddress):
    """A local part (before the @) beyond ASCII, for a transport that lacks SMTPUTF8."""


def _domain(domain: str) -> str:
    """A domain in its Unicode form (UTS #46), or lowercased as given if it is no valid name."""
    try:
        return str(idna.decode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError):
        return domain.lower()


def normalise(address: str) -> str:
    """The stored and matching form of any text given as an address; never refuses."""
    text = unicodedata.normalize("NFC", address.strip())
    local, at, domain = text.rpartition("@")
    if not at:
        return text.lower()
    return f"{local.lower()}@{_domain(domain)}"


def checked(address: str) -> str:
    """The stored form of a valid address (syntax only, no DNS); InvalidAddress otherwise.

    email_validator is imported here, on first use: compiling its grammar is a tenth of the
    start-up of a command that only reads (`campaign status` reaches this module)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    return normalise(valid.normalized)


def is_valid(address: str) -> bool:
    try:
        checked(address)
    except InvalidAddress:
        return False
    return True


def needs_smtputf8(address: str) -> bool:
    """Whether the local part (before the @) is non-ASCII: only SMTPUTF8 can carry it."""
    return not address.rpartition("@")[0].isascii()


def transport(address: str, *, smtputf8: bool = False) -> str:
    """The form for headers, SMTP envelopes and mail services' APIs: the domain in IDNA
    (punycode, lower-case), the local part as given, so every transport can carry it.

    A non-ASCII local part has no such form: NeedsSMTPUTF8, unless `smtputf8` (the message
    goes to a transport that takes SMTPUTF8, RFC 6531, or decides by `needs_smtputf8`)."""
    local, at, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{address}: not an email address")
    if not domain.isascii() or domain != domain.lower():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidAddress(
                f"{address}: the domain is not a valid internationalised domain ({exc})"
            ) from None
    if not smtputf8 and not local.isascii():
        raise NeedsSMTPUTF8(
            f"{address}: the part before the @ is not ASCII; only a mail server that "
            "supports SMTPUTF8 can deliver it"
        )
    return f"{local}@{domain}"
