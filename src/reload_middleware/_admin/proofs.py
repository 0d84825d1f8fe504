"""The server's half of ``trigger``'s challenge-response (``_local`` has the shared arithmetic):
answer a challenge with a fresh nonce and the proof that this server holds the credential, then
accept each nonce once, for the one request whose proof it carries.

A challenge is answered to anyone: its answer is an HMAC under the credential, which reveals
nothing of it, and a nonce is worth one request that only a holder of the credential can
authorise. Nonces are kept a minute, and only the latest few hundred.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

from .._local import PROOF_SCHEME, request_proof, server_proof

NONCE_LIFETIME_S = 60.0
_NONCES_KEPT = 256
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class Challenges:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nonces: OrderedDict[str, float] = OrderedDict()  # nonce -> when it expires

    @staticmethod
    def is_challenge(value: str) -> bool:
        return _CHALLENGE.fullmatch(value) is not None

    def answer(self, challenge: str, secret: str) -> dict[str, str]:
        """A fresh nonce, and the proof that the holder of ``secret`` made it for ``challenge``."""
        nonce = secrets.token_urlsafe(24)
        with self._lock:
            self._nonces[nonce] = time.monotonic() + NONCE_LIFETIME_S
            while len(self._nonces) > _NONCES_KEPT:
                self._nonces.popitem(last=False)
        return {"nonce": nonce, "proof": server_proof(secret, challenge, nonce)}

    def accepts(self, authorization: str, method: str, query: str, secrets_: Iterable[str]) -> bool:
        """Whether ``authorization`` proves, for a nonce issued here and not used yet, this very
        request (its method and query) under one of ``secrets_``; the nonce is used up either way."""
        scheme, _, rest = authorization.strip().partition(" ")
        nonce, _, proof = rest.strip().partition(" ")
        if scheme.lower() != PROOF_SCHEME or not nonce or not proof:
            return False
        with self._lock:
            expires = self._nonces.pop(nonce, None)
        if expires is None or time.monotonic() > expires:
            return False
        supplied = proof.strip().encode("latin-1", "replace")
        return any(
            hmac.compare_digest(supplied, request_proof(secret, nonce, method, query).encode()) for secret in secrets_
        )
