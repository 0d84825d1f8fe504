"""The local credential: what proves a request comes from this machine's user, not from anyone a
proxy forwards from 127.0.0.1.

A random secret, created once per OS user in the private directory (mode 0600), the way Jupyter
does it. Every server of this user accepts it when no token is configured; ``reload-middleware
trigger`` reads it by itself, and the server logs a status-page link that carries it in the URL
fragment (never sent to a server, so never in an access log or a referrer).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from ._errors import ConfigError
from ._trigger import private_directory

FILE_NAME = "credential"


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
