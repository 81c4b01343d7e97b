"""A real IMAP and POP3 server for the tests: Debian's dovecot, started from a config in a
temporary folder on free loopback ports (IMAPS, IMAP with STARTTLS, and, with Debian's
dovecot-pop3d, POP3S and POP3 with STLS), one user in a passwd-file, one mailbox for both.
No system service is touched. Run as root, the mailbox belongs to `nobody` and the login
processes run as `dovenull`; run as anyone else, everything runs as that user."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

DOVECOT = "/usr/sbin/dovecot"
POP3 = "/usr/lib/dovecot/pop3"
"""dovecot-pop3d's mail process; without it dovecot serves IMAP only."""


@dataclass(frozen=True)
class Dovecot:
    imaps_port: int
    imap_port: int
    """Plain IMAP, for STARTTLS. dovecot takes loopback as secure and would even take a login
    before it: a refused untrusted certificate is what shows TLS was started."""
    pop3s_port: int
    pop3_port: int
    """Plain POP3, for STLS (as imap_port); both listen only if available(pop3=True)."""
    username: str
    password: str
    ca_file: Path
    """The self-signed certificate the server presents, for 127.0.0.1."""


def available(*, pop3: bool = False) -> bool:
    return Path(DOVECOT).exists() and (not pop3 or Path(POP3).exists())


def _users() -> tuple[str, str, pwd.struct_passwd]:
    """(internal user, login user, owner of the mail)."""
    if os.getuid() == 0:
        return "dovecot", "dovenull", pwd.getpwnam("nobody")
    me = pwd.getpwuid(os.getuid())
    return me.pw_name, me.pw_name, me


def _listeners(protocol: str, plain: int, tls: int) -> str:
    return f"""
service {protocol}-login {{
  chroot =
  inet_listener {protocol} {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener {protocol}s {{
    address = 127.0.0.1
    port = {tls}
    ssl = yes
  }}
}}
"""


def _config(root: Path, ports: Dovecot, cert: Path, key: Path) -> str:
    internal, login, owner = _users()
    services = _listeners("imap", ports.imap_port, ports.imaps_port)
    if available(pop3=True):
        services += _listeners("pop3", ports.pop3_port, ports.pop3s_port)
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap{" pop3" if available(pop3=True) else ""}
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
# A wrong password is answered at once, and the next login is not slowed down (anvil).
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = 1
last_valid_uid = 0
mail_location = maildir:~/Maildir
mail_uid = {owner.pw_uid}
mail_gid = {owner.pw_gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={root}/home/%u
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{services}"""


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot stopped: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("dovecot did not start listening")


@contextmanager
def dovecot(cert: Path, key: Path, password: str = "imap-test-password") -> Iterator[Dovecot]:
    """dovecot in the foreground of a child process, until the block ends."""
    root = Path(tempfile.mkdtemp(prefix="campaign-dovecot-"))
    root.chmod(0o755)  # the mail processes run as another user when we are root
    _internal, _login, owner = _users()
    (root / "home").mkdir()
    os.chown(root / "home", owner.pw_uid, owner.pw_gid)
    shutil.copy(cert, root / "cert.pem")
    shutil.copy(key, root / "key.pem")
    username = "bounces"
    (root / "passwd").write_text(f"{username}:{{PLAIN}}{password}\n")
    server = Dovecot(free_port(), free_port(), free_port(), free_port(), username, password, cert)
    config = root / "dovecot.conf"
    config.write_text(_config(root, server, root / "cert.pem", root / "key.pem"))
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        ports = [server.imaps_port, server.imap_port]
        if available(pop3=True):
            ports += [server.pop3s_port, server.pop3_port]
        for port in ports:
            _wait_for(port, process, root / "dovecot.log")
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
