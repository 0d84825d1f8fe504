"""This OS user on this machine: the private directory, the local credential, loopback addresses.

Shared by the server (the admin endpoint's access rules, the worker processes' trigger) and the
``trigger`` client, which imports nothing of the server.

The local credential is what proves a request comes from this machine's user, not from anyone a
proxy forwards from 127.0.0.1.

A random secret, created once per OS user in the private directory (mode 0600), the way Jupyter
does it. Every server of this user accepts it when no token is configured; ``reload-middleware
trigger`` reads it by itself, and the server logs a status-page link that carries it in the URL
fragment (never sent to a server, so never in an access log or a referrer).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from ._errors import ConfigError

FILE_NAME = "credential"
_LOOPBACK_NAMES = ("localhost",)

logger = logging.getLogger(__name__)


def credential_path() -> Path:
    return private_directory() / FILE_NAME


def local_credential(*, create: bool = True) -> str | None:
    """This user's local credential, created if missing (unless ``create`` is false)."""
    path = credential_path()
    if create and not path.exists():
        _publish(path, secrets.token_urlsafe(32))
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the local credential {path}: {exc}") from exc
    with os.fdopen(descriptor) as file:
        info = os.fstat(file.fileno())
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the local credential {path} is readable by others or not ours: remove it")
        value = file.read().strip()
    return value or None


def _publish(path: Path, value: str) -> None:
    """Create ``path`` holding ``value``, whole or not at all: written under a name of its own,
    then linked into place, which fails if another process (a sibling worker starting at the
    same moment) published first; then theirs is the one read. Created in place, a reader could
    find it still empty."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(value)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(draft)


def is_loopback_host(host: str | None) -> bool:
    """``127.0.0.0/8``, ``::1``, their IPv4-mapped forms (a dual-stack listener) and ``localhost``."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() in _LOOPBACK_NAMES
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def private_directory() -> Path:
    """A directory only this user can use: ``$XDG_RUNTIME_DIR/reload-middleware``, else
    ``$TMPDIR/reload-middleware-<uid>``, else ``~/.cache/reload-middleware``.

    A candidate that exists but is not ours alone (another local user may have created it to
    watch or forge our triggers) is skipped, never used.
    """
    candidates = []
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "reload-middleware")
    candidates.append(Path(tempfile.gettempdir()) / f"reload-middleware-{os.getuid()}")
    candidates.append(Path.home() / ".cache" / "reload-middleware")
    for directory in candidates:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(directory)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            return directory
        logger.warning("not using %s for reload triggers: it is not a private directory of this user", directory)
    return Path(tempfile.mkdtemp(prefix="reload-middleware-"))  # private to this process at least


class ServerCredential:
    """A server's view of the local credential: the one it started with, and the file's as last
    read. A file removed (a ``/tmp`` cleaner, a logout) is published again with this server's
    value when ``trigger`` challenges it, so that ``trigger`` finds it; a file another server
    created meanwhile (after such a removal) is accepted too, and is the one this server proves it
    holds. Only ``current()`` touches the file: ``accepted()`` runs on event loops."""

    def __init__(self) -> None:
        own = local_credential()
        if own is None:
            raise ConfigError(f"cannot create the local credential {credential_path()}")
        self._own = self._file = own

    def current(self) -> str:
        """The value a same-user client reads now (published again if it was removed); it reads
        the file, so not on an event loop."""
        try:
            value = local_credential(create=False)
            if value is None:
                _publish(credential_path(), self._own)
                value = local_credential(create=False)
        except (OSError, ConfigError) as exc:
            logger.warning("the local credential file cannot be used (%s): this server keeps its own", exc)
            return self._own
        self._file = value or self._own
        return self._file

    def accepted(self) -> tuple[str, ...]:
        """The values a credential may have: the file's as last read, and this server's own."""
        return (self._file,) if self._file == self._own else (self._file, self._own)

    @property
    def started_with(self) -> str:
        return self._own


# The challenge-response of ``trigger``: nothing a listener on the port receives is the secret, or
# can be replayed. The client sends a random challenge; the server answers with a nonce and a proof
# that it holds the credential (an HMAC of both under it); the client checks it, then authorises
# each request with an HMAC of the nonce and the request, which the server accepts once.
CHALLENGE_PARAMETER = "challenge"
PROOF_SCHEME = "reload-proof"


def _mac(secret: str, *parts: str) -> str:
    return hmac.new(secret.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def server_proof(secret: str, challenge: str, nonce: str) -> str:
    return _mac(secret, "server", challenge, nonce)


def request_proof(secret: str, nonce: str, method: str, query: str) -> str:
    return _mac(secret, "client", nonce, method.upper(), query)


def proof_header(secret: str, nonce: str, method: str, query: str) -> str:
    """The ``Authorization`` value of one request, bound to its nonce, method and query."""
    return f"{PROOF_SCHEME} {nonce} {request_proof(secret, nonce, method, query)}"
