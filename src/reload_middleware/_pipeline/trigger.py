"""A reload trigger shared by the worker processes of one server.

Under ``uvicorn --workers N`` (or gunicorn) each worker is a process with its own middleware. A
``POST`` reaches one of them; that worker reloads and then writes the trigger file, which every
worker watches, so that the others reload too. The file lives in a directory private to this user,
is keyed by the app, the parent process and the working directory, and carries the listening
sockets of the worker that wrote it: only workers of the same server (which inherited the same
sockets) act on it, so two servers of one app started from one shell stay independent.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from .._local import private_directory

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signal:
    nonce: str
    force: bool


class SharedTrigger:
    def __init__(self, import_string: str, directory: Path | None = None) -> None:
        self.directory = directory or private_directory()
        key = f"{import_string}\0{os.getppid()}\0{os.getcwd()}"
        self.path = self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.trigger"
        self._seen: str | None = None  # the last signal taken
        self._fired: collections.deque[str] = collections.deque(maxlen=16)  # ours, most recent

    def fire(self, *, force: bool) -> None:
        """Ask every other worker of this server to reload (``force``: the whole app)."""
        nonce = uuid.uuid4().hex
        self._fired.append(nonce)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as file:
            data = {"nonce": nonce, "force": force, "pid": os.getpid(), "sockets": sorted(listening_sockets())}
            json.dump(data, file)
        os.replace(temporary, self.path)

    def take(self) -> Signal | None:
        """The signal another worker of this server wrote since we last looked, if any."""
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.load(file)
            signal = Signal(str(data["nonce"]), bool(data["force"]))
            theirs = set(data.get("sockets") or ())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # Our own signals are never for us: all the recent ones, since the event for one can be
        # read after we wrote the next.
        if signal.nonce == self._seen or signal.nonce in self._fired:
            return None
        self._seen = signal.nonce
        ours = listening_sockets()
        if ours and theirs and not ours & theirs:
            return None  # another server of the same app, started from the same place
        return signal

    def remove(self) -> None:
        """The server stops: leave nothing behind."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def listening_sockets() -> set[str]:
    """Identities (``socket:[inode]``) of this process's listening sockets; empty where unknown."""
    found: set[str] = set()
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for name in descriptors:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
            if not target.startswith("socket:"):
                continue
            probe = socket.socket(fileno=os.dup(int(name)))
        except (OSError, ValueError):
            continue
        with probe, contextlib.suppress(OSError):
            if probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                found.add(target)
    return found
