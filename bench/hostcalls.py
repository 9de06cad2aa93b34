"""Usage: bench/hostcalls.sh [rounds=5] [setup …]

The price of single proxy-wasm host calls in Envoy, next to the do-nothing floor: the lab filter
(bench/noop, configured with a list of host calls) makes the same calls the hot path makes, one
kind per setup, and the CPU µs per request above the floor is what each costs. Run by
bench/hostcalls.sh; prints a table (and writes bench/out/hostcalls.json)."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench')); sys.path.insert(0, str(ROOT / 'tests' / 'e2e'))
import bench as B, jwt_tool  # noqa: E402
from servers import IdP  # noqa: E402

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
idp = IdP(B.ISS).start(); jwks = idp.jwks()
hot = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub="bench"))
idp.stop()
labs = {
    "floor": None,
    # Marginal price of each kind of call: (×11 − ×1) / 10.
    "hdr*1": "hdr:authorization", "hdr*11": "hdr:authorization*11",
    "hdr_absent*1": "hdr:x-user-sub", "hdr_absent*11": "hdr:x-user-sub*11",
    "hdrs*1": "hdrs", "hdrs*11": "hdrs*11",
    "time*1": "time", "time*11": "time*11",
    "shared*1": "shared:c/1", "shared*11": "shared:c/1*11",
    "set*1": "set:x-user-sub", "set*11": "set:x-user-sub*11",
    "del_absent*1": "del:x-user-sub", "del_absent*11": "del:x-user-sub*11",
    # No host call: SHA-256 of a 430-byte token (the shared-data cache key) in Envoy's V8.
    "sha430*1": "sha:430", "sha430*11": "sha:430*11", "sha0": "sha:0",
    # The reference filter, and the hot path's calls (before and after).
    "ref(hdr+shared)": "hdr:authorization,shared:c/1",
    "hot_calls": "hdr:authorization,hdr:x-user-sub,time,shared:c/1,set:x-user-sub",
    "hdrs+time+set": "hdrs,time,set:x-user-sub",
    "hdr2+time+set": "hdr:authorization,hdr:x-user-sub,time,set:x-user-sub",
    "hdr+time+del+set": "hdr:authorization,time,del:x-user-sub,set:x-user-sub",
    # The limit reference and what the hot path does beyond it, one call at a time.
    "limit": "hdr:authorization,set:x-user-sub",
    "limit+del": "hdr:authorization,del:x_user_sub,set:x-user-sub",
    "limit+set_del": "hdr:authorization,set:x-user-sub,del:x_user_sub",
    "limit+hdr_absent": "hdr:authorization,hdr:x_user_sub,set:x-user-sub",
    "limit+time": "hdr:authorization,time,set:x-user-sub",
    "limit+time+del": "hdr:authorization,time,del:x_user_sub,set:x-user-sub",
    # After a set (the route cache already cleared): removing an absent header vs reading it.
    "set+del_absent*1": "set:x-user-sub,del:x_user_sub", "set+del_absent*11": "set:x-user-sub,del:x_user_sub*11",
    "set+hdr_absent*1": "set:x-user-sub,hdr:x_user_sub", "set+hdr_absent*11": "set:x-user-sub,hdr:x_user_sub*11",
}
if len(sys.argv) > 2:  # only these (and the floor)
    labs = {n: c for n, c in labs.items() if n == "floor" or n in sys.argv[2:]}
setups = {n: B.bootstrap([B.wasm_filter(B.NOOP_WASM, c, "lab")]) for n, c in labs.items()}
setups["tef_hot"] = B.bootstrap([B.wasm_filter(B.TEF_WASM, B.tef_conf(jwks), "tef")])
es = {n: B.Pinned(c, concurrency=1, name="".join(c if c.isalnum() else "_" for c in n)).start() for n, c in setups.items()}
res = {n: [] for n in es}
try:
    for n, e in es.items():
        B.wrk(e.port, 1, token=hot)
    for rnd in range(rounds):
        for n, e in es.items():
            t0 = e.cpu_ticks(); r = B.wrk(e.port, 3, token=hot)
            assert r["errors"] == 0, (n, r)
            res[n].append((e.cpu_ticks() - t0) * 1e4 / r["requests"])
finally:
    for e in es.values():
        e.stop()
med = {n: sorted(v)[len(v) // 2] for n, v in res.items()}
print(f"{'setup':18s} {'CPU µs/req':>10s} {'over floor':>10s}  calls")
for n, m in med.items():
    print(f"{n:18s} {m:10.1f} {m - med['floor']:10.1f}  {labs.get(n) or ('the filter' if n == 'tef_hot' else '-')}")
print("marginal µs per call:", {k[:-2]: round((med[k[:-2] + "*11"] - med[k]) / 10, 2) for k in med if k.endswith("*1") and k[:-2] + "*11" in med})
B.OUT.mkdir(parents=True, exist_ok=True)
(B.OUT / "hostcalls.json").write_text(json.dumps({"median_cpu_us": med, "all": res, "calls": labs}, indent=1))
