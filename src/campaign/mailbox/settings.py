"""`[mailbox]` in campaign.toml: where bounces, feedback reports and unsubscribe mails arrive."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

USERNAME_ENV = "MAILBOX_USERNAME"
PASSWORD_ENV = "MAILBOX_PASSWORD"

_PORTS = {
    ("imap", "tls"): 993,
    ("imap", "starttls"): 143,
    ("pop3", "tls"): 995,
    ("pop3", "starttls"): 110,
}


class MailboxSettings(BaseModel):
    """The mailbox `campaign mailbox` reads. The login comes from the environment
    (MAILBOX_USERNAME, MAILBOX_PASSWORD), never from this file."""

    model_config = ConfigDict(extra="forbid")

    host: str
    protocol: Literal["imap", "pop3"] = "imap"
    security: Literal["tls", "starttls"] = "tls"
    port: int | None = Field(default=None, description="Default 993/143 (IMAP), 995/110 (POP3).")
    folder: str = Field(default="INBOX", description="The IMAP folder read.")
    processed_folder: str = Field(
        default="Processed", description="IMAP: where each processed message is moved."
    )
    ca_file: str | None = Field(
        default=None, description="Certificates to trust besides the system's (a private CA)."
    )

    @model_validator(mode="after")
    def _pop3_has_no_folders(self) -> MailboxSettings:
        """A folder set for POP3 would be ignored: the inbox read instead of it, and what it
        processed deleted instead of kept in processed_folder."""
        defaults = type(self).model_fields
        if self.protocol == "pop3" and any(
            getattr(self, name) != defaults[name].default for name in ("folder", "processed_folder")
        ):
            raise ValueError(
                "POP3 has no folders (it reads the inbox and deletes what it processed): "
                'leave out folder and processed_folder, or use protocol = "imap"'
            )
        return self

    @property
    def effective_port(self) -> int:
        return self.port or _PORTS[(self.protocol, self.security)]
