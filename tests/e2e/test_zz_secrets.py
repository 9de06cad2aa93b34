"""Runs last (file order): every Envoy log of this run — Envoy at info, the filter's own wasm log
at debug — must contain none of the tokens, signatures or client secrets the suite used."""
import re

import jwt_tool
from harness import ALL_LOGS

PIECE = re.compile(r"[A-Za-z0-9_\-]{16,}")


def leaks(text: str, secrets: set[str]) -> list[str]:
    found = set()
    for m in PIECE.finditer(text):
        if m.group(0) in secrets:
            found.add(m.group(0))
    # Short secrets (client secrets) by plain search.
    found.update(s for s in secrets if len(s) < 16 and s in text)
    return sorted(found)


def test_scanner_finds_a_planted_secret():
    sig = jwt_tool.b64u(b"0123456789abcdef0123")
    assert leaks(f"... wasm log x: token eyJhbGc.eyJzdWIi.{sig} ...", {sig}) == [sig]
    assert leaks("client_secret=s3cr3t&x", {"s3cr3t"}) == ["s3cr3t"]
    assert leaks("nothing here", {sig, "s3cr3t"}) == []


def test_no_token_signature_or_secret_in_any_envoy_log():
    if not ALL_LOGS:
        import pytest
        pytest.skip("no Envoy ran in this session (run the whole suite)")
    secrets = set(jwt_tool.SECRETS)
    assert len(secrets) > 50, f"only {len(secrets)} secrets registered: the scan would prove little"
    scanned = 0
    for path in ALL_LOGS:
        text = path.read_text(errors="replace") if path.exists() else ""
        scanned += len(text)
        found = leaks(text, secrets)
        assert not found, f"{path}: {len(found)} secret(s) in the log, e.g. {found[0][:12]}…"
    assert scanned > 10_000
    print(f"\nscanned {len(ALL_LOGS)} Envoy logs ({scanned} bytes) for {len(secrets)} secrets: none found")
