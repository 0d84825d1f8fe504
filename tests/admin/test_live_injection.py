"""Live refresh's injection rules, in-process: which pages may take the script."""

from __future__ import annotations

import pytest

from reload_middleware._admin.live import _MetaPolicyWatch, csp_allows_injection, injects_status


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        ("script-src 'self' 'unsafe-inline'; connect-src 'self'", True),
        ("default-src 'self' 'unsafe-inline'", True),
        ("img-src *", True),  # says nothing of scripts or connections
        ("default-src 'self'", False),  # no inline scripts: a page written to keep scripts out
        ("script-src 'self' 'unsafe-inline' 'strict-dynamic'", False),  # 'self' ignored by browsers
        ("script-src 'self' 'unsafe-inline' 'nonce-abc'", False),  # a nonce switches 'unsafe-inline' off
        ("script-src 'self' 'unsafe-inline' 'sha256-AAAA'", False),
        ("script-src 'self' 'unsafe-inline'; connect-src https://api.example", False),  # no event stream
        ("SCRIPT-SRC 'SELF' 'UNSAFE-INLINE'", True),
    ],
)
def test_a_policy_allows_the_script_only_if_it_allows_self_and_inline_scripts(policy: str, allowed: bool) -> None:
    assert csp_allows_injection(policy) is allowed


@pytest.mark.parametrize(("status", "injected"), [(200, True), (404, True), (500, True), (206, False), (301, False)])
def test_only_whole_pages_take_the_script(status: int, injected: bool) -> None:
    assert injects_status(status) is injected


def test_a_meta_policy_is_found_even_across_two_chunks() -> None:
    watch = _MetaPolicyWatch()
    watch.feed(b'<head><meta http-equiv="Content-Sec')
    assert not watch.found
    watch.feed(b'urity-Policy" content="script-src none"></head>')
    assert watch.found
