"""Where the hot path's CPU goes: the do-nothing floor, then this filter built with compile-time
probes that stop after reading the headers (TEF_PROBE=headers) or after deciding without applying
(TEF_PROBE=decide), then the real build. Run by bench/probe.sh. With an algorithm as argument
(`bench/probe.sh EdDSA`): the cold path instead, cache off, every request a new token. With
`shared`: the hot token with the worker's front off (every request a shared-data hit), next to the
real build with the front on."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench')); sys.path.insert(0, str(ROOT / 'tests' / 'e2e'))
import bench as B, jwt_tool
from servers import IdP
idp = IdP(B.ISS).start(); jwks = idp.jwks()
hot = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub="bench"))
conf = B.tef_conf(jwks)
load = dict(token=hot)
extra = {}
if len(sys.argv) > 1 and sys.argv[1] == "shared":
    conf = B.tef_conf(jwks, local_entries=0)
    extra = {"full_front_on": B.bootstrap([B.wasm_filter(B.TEF_WASM, B.tef_conf(jwks), "tef")])}
elif len(sys.argv) > 1 and sys.argv[1] != "detail":
    alg = sys.argv[1]
    f = ROOT / "bench" / "out" / f"probe-cold-{alg}.txt"
    f.write_text("\n".join(jwt_tool.encode(idp.key(alg), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub=f"u{i}")) for i in range(20000)) + "\n")
    conf = B.tef_conf(jwks, cache=False)
    load = dict(token_file=f)
detail = len(sys.argv) > 1 and sys.argv[1] == "detail"
if detail:
    # The hot path next to the host-call lab making the same calls one by one (bench/noop).
    lab = lambda ops: B.bootstrap([B.wasm_filter(B.NOOP_WASM, ops, "lab")])
    extra = {"lab_hdr": lab("hdr:authorization"), "lab_hdr_time": lab("hdr:authorization,time"),
             "lab_limit": lab("hdr:authorization,set:x-user-sub"),
             "lab_limit_del": lab("hdr:authorization,set:x-user-sub,del:x_user_sub"),
             "full_no_underscore": B.bootstrap([B.wasm_filter(B.TEF_WASM, {**conf, "forward": {**conf["forward"], "strip_underscore_spellings": False}}, "tef")])}
setups = {
 "floor": B.bootstrap([B.wasm_filter(B.NOOP_WASM, None, "noop")]),
 "probe_entry": B.bootstrap([B.wasm_filter(ROOT / "bench" / "out" / "tef-probe-entry.wasm", conf, "tef")]),
 "probe_headers": B.bootstrap([B.wasm_filter(ROOT / "bench" / "out" / "tef-probe-headers.wasm", conf, "tef")]),
 "probe_decide": B.bootstrap([B.wasm_filter(ROOT / "bench" / "out" / "tef-probe-decide.wasm", conf, "tef")]),
 "full": B.bootstrap([B.wasm_filter(B.TEF_WASM, conf, "tef")]),
 **extra,
}
es = {n: B.Pinned(c, concurrency=1, name=n).start() for n, c in setups.items()}
res = {n: [] for n in es}
try:
    for n, e in es.items(): B.wrk(e.port, 1, **load)
    for rnd in range(int(__import__('os').environ.get('PROBE_ROUNDS', '4'))):
        for n, e in es.items():
            t0 = e.cpu_ticks(); r = B.wrk(e.port, 3, **load)
            res[n].append((e.cpu_ticks()-t0)*1e4/r["requests"])
finally:
    for e in es.values(): e.stop()
    idp.stop()
for n, v in res.items(): print(f"{n:14s} CPU µs/req median {sorted(v)[len(v)//2]:6.1f}  all {[round(x,1) for x in v]}")
