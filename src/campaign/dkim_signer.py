"""DKIM for mail sent over SMTP: the services sign for you, a relay of your own does not.

`Signer` adds a DKIM-Signature (rsa-sha256, relaxed/relaxed) covering From, To,
Subject, Date, Message-ID, List-Unsubscribe and List-Unsubscribe-Post, as RFC 8058
asks of one-click unsubscribe, to each message's bytes. `dns_record_for` is the
TXT record that receivers look up at <selector>._domainkey.<domain>; `campaign dkim`
prints it (and makes a key when there is none).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, ValidationError

from campaign.config import Config
from campaign.errors import ConfigError

SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
)


class DKIMOptions(BaseModel):
    """`[provider.dkim]` of the smtp provider."""

    model_config = ConfigDict(extra="forbid")

    key_file: str
    """The RSA private key (PEM), relative to the workspace; `campaign dkim` makes one."""
    selector: str
    """The DNS label: the record lives at <selector>._domainkey.<domain>."""
    domain: str
    """The signing domain (d=): the From address's domain, or one it belongs to (DMARC)."""


@dataclass(frozen=True, slots=True)
class Signer:
    key: bytes
    selector: str
    domain: str

    @classmethod
    def load(cls, options: DKIMOptions, key_file: Path) -> Signer:
        """The signer for `options`; a ConfigError names the key file when it is missing or
        not an RSA private key, before anything is sent."""
        try:
            key = key_file.read_bytes()
            loaded = serialization.load_pem_private_key(key, password=None)
        except OSError as exc:
            raise ConfigError(
                f"[provider.dkim] key_file {key_file}: {exc.strerror} (make one with `campaign dkim`)"
            ) from None
        except (ValueError, TypeError):
            raise ConfigError(
                f"[provider.dkim] key_file {key_file}: not an unencrypted PEM private key"
            ) from None
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ConfigError(f"[provider.dkim] key_file {key_file}: not an RSA key")
        return cls(key, options.selector, options.domain)

    def sign(self, raw: bytes) -> bytes:
        """`raw` with its DKIM-Signature header in front."""
        signature: bytes = dkim.sign(
            raw,
            self.selector.encode(),
            self.domain.encode(),
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h for h in SIGNED_HEADERS if _has_header(raw, h)],
        )
        return signature + raw

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def _has_header(raw: bytes, name: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(name.lower() + b":") or b"\r\n" + name.lower() + b":" in head


def dns_record(key_pem: bytes) -> str:
    """The TXT record's value for the public half of `key_pem`."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def new_key(path: Path) -> None:
    """A new 2048-bit RSA key at `path`, readable by its owner only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)


@dataclass(frozen=True, slots=True)
class DNSRecord:
    name: str
    value: str
    key_file: Path
    made_key: bool

    @property
    def zone_line(self) -> str:
        """The record as a zone-file line: DNS strings hold 255 characters, so a longer
        value is split into several quoted strings, which receivers join."""
        value = self.value
        chunks = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        return f"{self.name}. IN TXT ( {chunks} )"


def dns_record_for(config: Config) -> DNSRecord:
    """The TXT record to publish for `[provider.dkim]`, making the key first when there is none."""
    settings = config.provider.options.get("dkim")
    if not isinstance(settings, dict):
        raise ConfigError(
            "campaign.toml has no [provider.dkim]: add key_file, selector and domain "
            "(see the README's section on authentication)"
        )
    try:
        options = DKIMOptions.model_validate(settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"[provider.dkim]: {problems}") from None
    key_file = config.workspace / Path(options.key_file).expanduser()
    made = not key_file.exists()
    if made:
        new_key(key_file)
    signer = Signer.load(options, key_file)
    return DNSRecord(signer.record_name, dns_record(signer.key), key_file, made)
