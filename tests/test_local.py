"""The local credential, created by whichever process of this user starts first."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# Each worker imports first, then waits for the same instant, as close together as processes get.
CREATE = """
import sys, time
from reload_middleware._local import local_credential
start = float(sys.argv[1])
while time.time() < start:
    pass
print(local_credential())
"""


def test_workers_starting_together_all_read_one_whole_credential(tmp_path: Path) -> None:
    # Sibling workers of one server start at the same moment: each must read the one credential,
    # complete (a worker that read it empty refused every reload with 401).
    for round_number in range(4):
        run = tmp_path / f"run{round_number}"
        run.mkdir(mode=0o700)
        environment = {**os.environ, "XDG_RUNTIME_DIR": str(run)}
        start = str(time.time() + 1.0)
        workers = [
            subprocess.Popen([sys.executable, "-c", CREATE, start], env=environment, stdout=subprocess.PIPE, text=True)
            for _ in range(6)
        ]
        values = {worker.communicate(timeout=60)[0].strip() for worker in workers}
        assert len(values) == 1, values
        (value,) = values
        assert len(value) >= 40
        assert (run / "reload-middleware" / "credential").read_text() == value
        assert sorted(path.name for path in (run / "reload-middleware").iterdir()) == ["credential"]
