"""``trigger`` across replicas: a rolling in-place reload, a few replicas at a time, each checked,
stopping at the first failure (or past ``max_failures``), as gunicorn's HUP or a Kubernetes
rolling update would. The deploy tool already knows the replicas: they are given as URLs, or as
a host name whose every address is one (``all_addresses``: a headless service, a DNS round robin).

Nothing here prints: the command line formats what ``roll_out`` returns.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from .._config import declaration
from .._local import CHALLENGE_PARAMETER, is_loopback_host, local_credential, proof_header, server_proof


class ReplicaOutcome(str, enum.Enum):
    RELOADED = "reloaded"
    UNCHANGED = "unchanged"  # nothing changed: the version serving is the one wanted
    FAILED = "failed"  # the reload failed, or is stale
    CHECK_FAILED = "check failed"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"  # the roll-out stopped before this replica

    @property
    def ok(self) -> bool:
        return self in (ReplicaOutcome.RELOADED, ReplicaOutcome.UNCHANGED)

    @property
    def unreached(self) -> bool:
        return self in (ReplicaOutcome.REFUSED, ReplicaOutcome.UNREACHABLE)


@dataclass(frozen=True)
class Replica:
    """Where to send the reload: ``url`` (an address), and the ``Host`` it is known by."""

    url: str
    host: str

    @property
    def loopback(self) -> bool:
        return is_loopback_host(urllib.parse.urlsplit(self.url).hostname)


@dataclass
class Result:
    replica: Replica
    outcome: ReplicaOutcome = ReplicaOutcome.SKIPPED
    before: int | None = None
    after: int | None = None
    message: str = ""
    seconds: float = 0.0
    answer: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica.url,
            "outcome": self.outcome.value,
            "version_before": self.before,
            "version_after": self.after,
            "message": self.message,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Rollout:
    """How to roll a reload through the replicas: the credential, what to reload, where, and how
    many at once and how many may fail."""

    token: str | None = None
    force: bool = False
    admin_path: str = declaration("admin_path").default
    timeout: float = 60.0
    batch: int = 1
    check: str | None = None
    max_failures: int = 0


class BadTarget(ValueError):
    """A URL or a host name that names no replica."""


def replicas(urls: Iterable[str], all_addresses: bool = False) -> list[Replica]:
    """The replicas the URLs name: each URL, or with ``all_addresses`` each address its host
    name resolves to (on the URL's port)."""
    found: list[Replica] = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadTarget(f"{url!r} is not a server URL such as http://127.0.0.1:8000")
        base = url.rstrip("/")
        if not all_addresses:
            found.append(Replica(base, parts.netloc))
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise BadTarget(f"{parts.hostname!r} does not resolve: {exc}") from None
        addresses = sorted({str(info[4][0]) for info in infos}, key=lambda a: (ipaddress.ip_address(a).version, a))
        for address in addresses:
            shown = f"[{address}]" if ":" in address else address
            found.append(Replica(f"{parts.scheme}://{shown}:{port}{parts.path.rstrip('/')}", parts.netloc))
    return list(dict.fromkeys(found))


def roll_out(
    targets: list[Replica], rollout: Rollout, on_result: Callable[[Result], object] = lambda _: None
) -> list[Result]:
    """Reload ``targets`` ``rollout.batch`` at a time; stop once more than ``rollout.max_failures`` fail.
    Replicas after the stop are ``SKIPPED``: they keep their version."""
    results = [Result(replica) for replica in targets]
    failures = 0
    with ThreadPoolExecutor(max_workers=max(1, rollout.batch)) as pool:
        for start in range(0, len(results), max(1, rollout.batch)):
            batch = results[start : start + max(1, rollout.batch)]
            for result in pool.map(lambda result: _reload(result, rollout), batch):
                on_result(result)
                failures += not result.outcome.ok
            if failures > rollout.max_failures:
                break
    return results


class NotOurs(Exception):
    """The server could not prove it holds this user's local credential."""


def _authorised(client: httpx.Client, admin: str, token: str | None, method: str, query: str) -> dict[str, str]:
    """The headers that authorise one request: the configured token, or, for a server on this
    machine, a proof bound to a nonce the server issued once it proved it holds this user's local
    credential. The credential itself is never sent: a listener of another user learns nothing.

    Raises:
        NotOurs: the server did not prove it (another user may listen on that port).
    """
    if token:
        return {"authorization": f"Bearer {token}"}
    challenge = secrets.token_urlsafe(24)
    answer = client.get(admin, params={CHALLENGE_PARAMETER: challenge})
    # Read after the challenge: a server of ours publishes the credential again if it was removed.
    credential = local_credential(create=False)
    try:
        nonce, proof = answer.json()["nonce"], answer.json()["proof"]
    except (ValueError, KeyError, TypeError):
        nonce = proof = None
    if (
        credential is None
        or not isinstance(nonce, str)
        or not isinstance(proof, str)
        or not hmac.compare_digest(proof, server_proof(credential, challenge, nonce))
    ):
        raise NotOurs(
            f"{admin} did not prove it holds this user's local credential, so nothing was sent to it: it is "
            "not a server of this user (another user may listen on that port), or it has a token (pass --token)"
        )
    return {"authorization": proof_header(credential, nonce, method, query)}


def _reload(result: Result, rollout: Rollout) -> Result:
    replica = result.replica
    started = time.monotonic()
    token = rollout.token
    # The local credential is for servers on this machine only: elsewhere, nothing but a token.
    credentialed = bool(token) or replica.loopback
    admin = f"{replica.url}{rollout.admin_path}"
    query = urllib.parse.urlencode({"force": "1"}) if rollout.force else ""
    try:
        with httpx.Client(headers={"host": replica.host}, timeout=rollout.timeout) as client:
            headers = _authorised(client, admin, token, "GET", "") if credentialed else {}
            status = client.get(admin, headers=headers)
            if status.status_code == 200:
                result.before = status.json().get("version")
            headers = _authorised(client, admin, token, "POST", query) if credentialed else {}
            response = client.post(f"{admin}?{query}" if query else admin, headers=headers)
            _read_answer(result, response)
        if result.outcome.ok and rollout.check is not None:
            # Without the credential: the check is the app's, which has no business seeing it.
            with httpx.Client(headers={"host": replica.host}, timeout=rollout.timeout) as client:
                _check(result, client, f"{replica.url}{rollout.check}")
    except httpx.HTTPError as exc:
        result.outcome, result.message = ReplicaOutcome.UNREACHABLE, f"could not reach {admin}: {exc}"
    except NotOurs as exc:
        result.outcome, result.message = ReplicaOutcome.REFUSED, str(exc)
    except ValueError:  # not our JSON: something else answers there
        result.outcome, result.message = ReplicaOutcome.REFUSED, f"{admin} did not answer as an admin endpoint"
    result.seconds = time.monotonic() - started
    return result


def _read_answer(result: Result, response: httpx.Response) -> None:
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code in (401, 403, 405) or not isinstance(answer, dict) or "ok" not in answer:
        detail = answer.get("error", response.text) if isinstance(answer, dict) else response.text
        result.outcome, result.message = ReplicaOutcome.REFUSED, f"refused ({response.status_code}): {detail}"
        return
    result.answer = answer
    result.after = answer.get("version")
    error = answer.get("error") or {}
    if not answer["ok"]:
        result.outcome = ReplicaOutcome.FAILED
        if error.get("type") == "StaleCode":  # it swapped, but old code still answers
            result.message = f"reloaded to version {result.after}, but it is stale: {error.get('message')}"
        else:
            where = f" at {error.get('file')}:{error.get('line')}" if error.get("file") else ""
            result.message = (
                f"reload failed, version {result.after} serves on: {error.get('type')}: {error.get('message')}{where}"
            )
    elif answer.get("reloaded"):
        result.outcome = ReplicaOutcome.RELOADED
        count, duration = len(answer["reloaded"]), answer.get("duration_ms")
        result.message = f"reloaded {count} module(s) in {duration} ms, now version {result.after}"
    else:
        result.outcome = ReplicaOutcome.UNCHANGED
        result.message = f"nothing changed, version {result.after} serves on"


def _check(result: Result, client: httpx.Client, url: str) -> None:
    """The health check: a 2xx from the new version (its version header says which)."""
    response = client.get(url)
    served = response.headers.get("x-reload-version")
    if not response.is_success or (served is not None and served != str(result.after)):
        result.outcome = ReplicaOutcome.CHECK_FAILED
        result.message += f"; check {url} answered {response.status_code} from version {served}"
