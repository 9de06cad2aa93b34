"""What the filter costs in memory: Envoy's resident memory with the do-nothing floor and with the
filter, for 1, 2 and 4 workers, after traffic on every worker (the hot token, and four new tokens
of each algorithm per worker, so that every key's verification tables are built), next to what
Envoy's allocator says of its heap (admin `/memory`). With `--release`, each setup once more with
the bootstrap's `memory_allocator_manager` (free heap pages given back to the system every
second). With `--small`, the size-first build (`./wasm-build.sh --small`) as well.

Usage: bench/memory.sh [--release] [--small]. Prints a Markdown table; no target, a measure: a
sidecar fleet pays this per pod."""
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench")); sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import bench as B  # noqa: E402
import jwt_tool  # noqa: E402
from harness import Envoy  # noqa: E402
from servers import IdP  # noqa: E402

SMALL_WASM = ROOT / "target" / "wasm32-wasip1" / "release-small" / "token_exchange_filter.wasm"
MB = 1 << 20


def resident(pid: int) -> tuple[float, float]:
    """VmRSS and its anonymous part (the heap, V8's code and the VMs' linear memories), MB."""
    s = Path(f"/proc/{pid}/status").read_text()
    kb = lambda k: int(re.search(rf"{k}:\s+(\d+)", s).group(1)) / 1024
    return kb("VmRSS"), kb("RssAnon")


def measure(config: dict, workers: int, tokens: list[str], release: bool) -> dict:
    if release:
        config = {**config, "memory_allocator_manager": {"bytes_to_release": 1 << 30, "memory_release_interval": "1s"}}
    e = Envoy(config, concurrency=workers, name="memory", schema_check=False).start()
    try:
        # One connection per request: Envoy hands connections to its workers in turn, so each
        # worker's VM sees traffic.
        statuses = {e.get("/orders", {"authorization": f"Bearer {t}"}).status for _ in range(workers * 2) for t in tokens}
        if statuses != {200}:
            raise RuntimeError(f"unexpected statuses {statuses}:\n{e.log()[-2000:]}")
        time.sleep(3)
        rss, anon = resident(e.proc.pid)
        heap = {k: int(v) / MB for k, v in json.loads(e.admin("/memory").body).items()}
        return {"rss": rss, "anon": anon, "allocated": heap.get("allocated", 0), "heap": heap.get("heap_size", 0),
                "free": heap.get("pageheap_free", 0) + heap.get("total_thread_cache", 0)}
    finally:
        e.stop()


def main():
    release = "--release" in sys.argv
    idp = IdP(B.ISS).start()
    try:
        jwks = idp.jwks()
        hot = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub="bench"))
        tokens = [hot] + [jwt_tool.encode(idp.key(a), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub=f"m{a}{i}"))
                          for a in ("RS256", "ES256", "EdDSA") for i in range(4)]
        setups = {"wasm_floor": B.bootstrap([B.wasm_filter(B.NOOP_WASM, None, "noop")]),
                  "tef": B.bootstrap([B.wasm_filter(B.TEF_WASM, B.tef_conf(jwks), "tef")])}
        if "--small" in sys.argv:
            setups["tef_small"] = B.bootstrap([B.wasm_filter(SMALL_WASM, B.tef_conf(jwks), "tef")])
        rows = []
        for name, cfg in setups.items():
            for workers in (1, 2, 4):
                for rel in (False, True) if release else (False,):
                    m = measure(cfg, workers, tokens, rel)
                    rows.append((name + (" (release)" if rel else ""), workers, m))
                    print(f"{rows[-1][0]:22s} workers={workers} " + " ".join(f"{k}={v:.1f}" for k, v in m.items()), flush=True)
    finally:
        idp.stop()
    floor = {w: m for n, w, m in rows if n == "wasm_floor"}
    print("\n| setup | workers | RSS MB | over the floor | heap allocated MB | heap free, not returned MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, w, m in rows:
        print(f"| {n} | {w} | {m['rss']:.1f} | {m['rss'] - floor[w]['rss']:+.1f} | {m['allocated']:.1f} | {m['free']:.1f} |")
    print(f"\n.wasm: {B.TEF_WASM.stat().st_size} bytes" + (f"; size-first {SMALL_WASM.stat().st_size}" if "--small" in sys.argv else ""))


if __name__ == "__main__":
    main()
