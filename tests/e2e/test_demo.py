"""The README's first command, the demo, runs and shows what it says it shows.

`tests/demo.py` (what `./tests/demo.sh` runs after the bootstrap and the build, both of which
every test run does too) is run as a user runs it, and its printed sections are read back: each
request's HTTP status, the identity the upstream saw and the claims of the token it received.
A demo that printed 503s, leaked the client's spoofed header or forwarded the wrong token
would fail here rather than on a user's first try."""
import json
import os
import re
import subprocess
import sys

from harness import ROOT


def sections(out: str) -> dict:
    """`--- title` → the lines under it."""
    found, title = {}, None
    for line in out.splitlines():
        if line.startswith("--- "):
            title = line[4:]
            found[title] = []
        elif title is not None:
            found[title].append(line.strip())
    return found


def pick(found: dict, start: str) -> list:
    hits = [v for k, v in found.items() if k.startswith(start)]
    assert len(hits) == 1, f"no single demo section starting {start!r}: {list(found)}"
    return hits[0]


def status(lines: list) -> int:
    return int(next(line for line in lines if line.startswith("HTTP "))[5:])


def seen(lines: list, header: str) -> str:
    return next(line for line in lines if line.startswith(f"upstream saw {header}: ")).split(": ", 1)[1]


def claims(lines: list) -> dict:
    return json.loads(next(line for line in lines if line.startswith("that token's claims: ")).split(": ", 1)[1])


def test_the_demo_shows_each_hop_its_own_token_and_the_refusals():
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "demo.py")], capture_output=True, text=True,
                         timeout=180, env=dict(os.environ), cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    found = sections(run.stdout)

    first = pick(found, "GET /orders/42 with the client token and a spoofed x-user-sub")
    assert status(first) == 200
    assert seen(first, "x-user-sub") == "alice"  # the client's `admin` never arrives
    assert claims(first)["aud"] == "https://orders.ecomm.com" and claims(first)["iss"] == "https://sts.example.com"
    again = pick(found, "GET /orders/43 again")
    assert status(again) == 200 and claims(again) == claims(first)
    assert "(the STS was called 1 time(s))" in again
    profile = pick(found, "GET /profile")
    assert status(profile) == 200 and claims(profile)["aud"] == "https://api.example.com"

    assert status(pick(found, "GET /orders/42 with a token lacking orders:read")) == 403
    for title, why in (("no token", None), ("expired RS256 token", "token expired"),
                       ("EdDSA token signed by an attacker's key", "token signature invalid")):
        lines = pick(found, title)
        assert status(lines) == 401, title
        www = next(line for line in lines if line.startswith("www-authenticate: "))
        assert www.startswith("www-authenticate: Bearer realm="), title
        if why:
            assert f'error_description="{why}"' in www, title

    catalog = pick(found, "GET /catalog/7")
    assert status(catalog) == 200
    minted = claims(catalog)
    assert minted["iss"] == "https://edge.ecomm.com" and minted["aud"] == "https://catalog.ecomm.com"
    assert minted["sub"] == "alice" and minted["act"] == {"sub": "https://edge.ecomm.com"}
    assert seen(catalog, "x-principal") == '["https://edge.ecomm.com","alice"]'
    assert status(pick(found, "the client's own token sent straight to catalog's sidecar")) == 401

    health = pick(found, "anonymous health check")
    assert status(health) == 200 and seen(health, "x-user-sub") == "(absent)"

    counters = dict(re.findall(r"token_exchange_filter\.([a-z_.]+): (\d+)", run.stdout))
    assert counters["exchange_ok"] == "1" and counters["exchange_cache_hit"] == "1"
    assert counters["denied.signature"] == "1" and counters["denied.expired"] == "1"
