"""Bounded soak: a real Envoy (2 workers) with the filter and a remote JWKS, driven by wrk at a fixed
request rate (tests/e2e/paced.lua: send slots 1/rate apart over 16 connections) through N distinct
live tokens (more than the cache holds, so slots are evicted all the time). Fails on any non-2xx
answer or socket error, on an achieved rate under 95 % of the target, or on RSS growth past the
bound after warm-up. (Envoy has no way to list or size shared data from outside; the cache's
bound holds by construction, `max_entries` slot keys, and is unit-tested.)

Usage: tests/soak.sh [seconds=45] [tokens=100000] [rate=400]"""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "e2e"))
import jwt_tool  # noqa: E402
from harness import Envoy, bootstrap, remove_temp_dirs, static_cluster  # noqa: E402
from servers import Echo, IdP  # noqa: E402

ISS = "https://idp.soak"
RSS_GROWTH_LIMIT_MB = 16
LUA = Path(__file__).parent / "e2e" / "paced.lua"


def rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def main():
    secs = int(sys.argv[1]) if len(sys.argv) > 1 else 45
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    conns = 16
    idp, echo = IdP(ISS, algs=("EdDSA",)).start(), Echo().start()
    out = Path("/tmp") / "tef-soak"
    out.mkdir(exist_ok=True)
    toks = out / "tokens.txt"
    k = idp.key("EdDSA")
    toks.write_text("\n".join(jwt_tool.encode(k, jwt_tool.claims(ISS, "api", ttl=3600 * 4, sub=f"s{i}")) for i in range(n)) + "\n")
    max_entries = max(1000, n // 5)
    cfg = {"providers": [{"name": "p", "issuer": ISS, "audiences": ["api"],
                          "jwks": {"cluster": "idp", "path": "/jwks", "refresh_seconds": 10}}],
           "forward": {"claims_to_headers": {"sub": "x-user-sub"}}, "cache": {"max_entries": max_entries}}
    envoy = Envoy(bootstrap(cfg, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]), name="soak").start()
    try:
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "-s", str(LUA), f"http://127.0.0.1:{envoy.port}/", "--", str(toks), str(rate)],
                               stdout=subprocess.PIPE, text=True)
        samples = []
        t0 = time.time()
        while wrk.poll() is None:
            samples.append((round(time.time() - t0), rss_mb(envoy.proc.pid)))
            time.sleep(min(15, max(1, secs / 10)))
        report = wrk.stdout.read()
        samples.append((round(time.time() - t0), rss_mb(envoy.proc.pid)))
        reqs = int(re.search(r"(\d+) requests in", report).group(1))
        non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", report)) else 0
        errors = re.search(r"Socket errors: .*", report)
        stats = envoy.stats()
        warm = [r for t, r in samples if t >= min(15, secs / 3)]
        growth = max(warm) - warm[0] if warm else 0
        print(f"soak: {secs}s, {reqs} requests ({reqs / secs:.0f}/s, target {rate}/s) through {n} distinct tokens, cache max_entries {max_entries}")
        print(f"  RSS MB over time: {samples}")
        print(f"  RSS growth after warm-up: {growth:.1f} MB (limit {RSS_GROWTH_LIMIT_MB})")
        print(f"  filter: allowed {stats.get('allowed')} cache_hit {stats.get('cache_hit')} cache_miss {stats.get('cache_miss')} "
              f"jwks_fetch_ok {stats.get('jwks_fetch_ok')} denied {sum(v for k, v in stats.items() if k.startswith('denied.'))}")
        ok = non2xx == 0 and errors is None and growth <= RSS_GROWTH_LIMIT_MB and reqs >= 0.95 * rate * secs
        print(f"  non-2xx {non2xx}, socket errors {errors.group(0) if errors else 'none'}")
        print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
        return 0 if ok else 1
    finally:
        envoy.stop()
        idp.stop()
        echo.stop()
        remove_temp_dirs()


if __name__ == "__main__":
    sys.exit(main())
