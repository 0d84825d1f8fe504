"""A reload trigger shared by the worker processes of one server.

Under ``uvicorn --workers N`` (or gunicorn) each worker is a process with its own middleware. A
``POST`` reaches one of them; that worker reloads and then writes the trigger file, which every
worker watches, so that the others reload too. The file lives in a directory private to this user
(created 0700 and checked), and is keyed by the app and the parent process that all workers share.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from ._errors import ConfigError


@dataclass(frozen=True)
class Signal:
    nonce: str
    force: bool


class SharedTrigger:
    def __init__(self, import_string: str, directory: Path | None = None) -> None:
        self.directory = directory or private_directory()
        key = f"{import_string}\0{os.getppid()}\0{os.getcwd()}"
        self.path = self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.trigger"
        self._seen: str | None = None

    def fire(self, *, force: bool) -> None:
        """Ask every other worker to reload (``force``: the whole app)."""
        nonce = uuid.uuid4().hex
        self._seen = nonce
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"nonce": nonce, "force": force, "pid": os.getpid()}, file)
        os.replace(temporary, self.path)

    def take(self) -> Signal | None:
        """The signal another worker wrote since we last looked, if any."""
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.load(file)
            signal = Signal(str(data["nonce"]), bool(data["force"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if signal.nonce == self._seen:
            return None
        self._seen = signal.nonce
        return signal


def private_directory() -> Path:
    """``$TMPDIR/reload-middleware-<uid>``, created 0700; refused if anyone else could write there."""
    directory = Path(tempfile.gettempdir()) / f"reload-middleware-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(directory)
    except OSError as exc:
        raise ConfigError(f"cannot create the trigger directory {directory}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(
            f"the trigger directory {directory} is not a private directory of this user "
            "(it must be a real directory, owned by us, mode 0700): remove it and start again"
        )
    return directory
