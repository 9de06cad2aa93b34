"""Benchmark: this filter vs bare Envoy, a do-nothing proxy-wasm filter, and Envoy's native
jwt_authn, on one machine. Envoy runs with --concurrency 1 pinned to one core, wrk pinned to the
other; routes are direct_response (no upstream is measured); every setup runs several times,
interleaved (A B C … A B C …); medians and ratios come from the same run.

Usage: bench/run.sh [--duration S] [--rounds N] [--cold-tokens N] [--population N] [--only a,b]
                    [--baseline OTHER.wasm]
Writes bench/out/results.json, and bench/RESULTS.md and bench/results.json for a full run (a run
with --only writes bench/out/RESULTS.md instead). --baseline adds base_hot, base_hot_shared, base_exchange_hot, base_population, base_mint_cold, base_mtls_hot (with the TLS setups) and base_cold_<alg>:
the same setups with another build of the filter (e.g. the last release), in the same run."""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import jwt_tool  # noqa: E402
from harness import Envoy, static_cluster  # noqa: E402
from servers import STS, IdP  # noqa: E402
from pki import Pki  # noqa: E402

ISS, AUD = "https://idp.bench", "api"
TEF_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "token_exchange_filter.wasm"
NOOP_WASM = ROOT / "bench" / "noop" / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
OUT = ROOT / "bench" / "out"
ENVOY_CORE, LOAD_CORE = "0", "1"

LUA = ROOT / "tests" / "e2e" / "tokens.lua"
DPOP_LUA = ROOT / "tests" / "e2e" / "dpop.lua"
DPOP_ORIGIN = "https://api.bench"


def wasm_filter(path: Path, conf: dict | str | None, vm_id: str) -> dict:
    cfg = {"name": vm_id, "root_id": vm_id, "failure_policy": "FAIL_CLOSED",
           "vm_config": {"vm_id": vm_id, "runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(path)}}}}
    if conf is not None:
        cfg["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": conf if isinstance(conf, str) else json.dumps(conf)}
    return {"name": "envoy.filters.http.wasm",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": cfg}}


def jwt_authn(jwks: dict, cache: bool) -> dict:
    provider = {"issuer": ISS, "audiences": [AUD], "local_jwks": {"inline_string": json.dumps(jwks)}, "forward": True,
                "claim_to_headers": [{"header_name": "x-user-sub", "claim_name": "sub"}]}
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 200000}
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"corp": provider}, "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "corp"}}]}}


def bootstrap(filters: list[dict], clusters=()) -> dict:
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "bench",
           "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
               {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
           "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                                                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}],
                                 "clusters": list(clusters)}}


def with_tls(cfg: dict, pki: Pki) -> dict:
    """The bench listener over TLS, a client certificate required (validated against the CA)."""
    cfg["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": str(pki.d / "server.pem")},
                                  "private_key": {"filename": str(pki.d / "server.key")}}],
            "validation_context": {"trusted_ca": {"filename": str(pki.d / "ca.pem")}}}}}
    return cfg


def tls_front(port: int, cert: str, key: str) -> dict:
    """The TLS client wrk cannot be: a plain Envoy (on the load core) that forwards to the bench
    Envoy's TLS listener with a client certificate, over kept-alive connections."""
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "front",
           "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "target"}}]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    cluster = {"name": "target", "type": "STATIC", "connect_timeout": "2s",
               "load_assignment": {"cluster_name": "target", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
               "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "sni": "localhost",
                   "common_tls_context": {"tls_certificates": [{"certificate_chain": {"filename": cert}, "private_key": {"filename": key}}]}}}}
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                                                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}],
                                 "clusters": [cluster]}}


SIGNING_KEY = jwt_tool.Key("EdDSA", kid="bench-edge")


def tef_conf(jwks: dict, cache: bool = True, exchange: bool = False, max_entries: int = 10000, local_entries: int = 1024,
             mint: bool = False, introspection: bool = False, extra_providers: int = 0, dpop: bool = False,
             txn: bool = False, max_ttl: int = 300) -> dict:
    c = {"providers": [{"name": "corp", "issuer": ISS, "audiences": [AUD], "jwks": {"inline": jwks}}],
         "forward": {"claims_to_headers": {"sub": "x-user-sub"}},
         "cache": {"max_entries": max_entries, "max_ttl_seconds": max_ttl if cache else 0, "local_entries": local_entries}}
    if dpop:
        # Proofs are made before the run: a window as long as the run. The replay table keeps its
        # default size (65 536), full after the first seconds, as in steady production traffic.
        c["providers"][0]["dpop"] = {"required": True, "max_age_seconds": 3600, "htu_origin": DPOP_ORIGIN}
    if introspection:
        c["providers"][0]["introspection"] = {"cluster": "idp", "path": "/token/introspection", "max_cache_seconds": 300,
                                              "client_auth": {"method": "client_secret_basic", "client_id": "gw", "client_secret": "s3cr3t"}}
    for i in range(extra_providers):
        k = jwt_tool.Key("ES256", kid=f"other-{i}")
        c["providers"].append({"name": f"other{i}", "issuer": f"https://other{i}.bench", "audiences": [AUD],
                               "jwks": {"inline": {"keys": [k.public_jwk()]}}})
    if mint:
        c["signing"] = {"issuer": "https://edge.bench", "kid": SIGNING_KEY.kid, "alg": "EdDSA",
                        "private_jwk": SIGNING_KEY.private_jwk(), "ttl_seconds": 300}
        c["routes"] = [{"match": {"path_prefix": "/"}, "mint": {"audience": "https://orders.bench"}}]
    if exchange or txn:
        c["sts"] = {"cluster": "sts", "path": "/token", "timeout_ms": 2000, "issuer": "https://sts.bench",
                    "client_auth": {"method": "client_secret_basic", "client_id": "gateway", "client_secret": "s3cr3t"},
                    "jwks": {"cluster": "sts", "path": "/jwks"}}
        c["routes"] = [{"match": {"path_prefix": "/"}, "exchange": {"audience": "https://orders.bench"}}]
    if txn:
        c["routes"] = [{"match": {"path_prefix": "/"}, "exchange": {"txn_token": True, "audience": "trust.bench"}}]
    return c


class DpopKey:
    """A DPoP client key and its proofs for the bench's request (GET https://api.bench/orders)."""

    def __init__(self):
        import hashlib
        self.key = jwt_tool.Key("ES256")
        self.jwk = {k: v for k, v in self.key.public_jwk().items() if k not in ("kid", "use", "alg")}
        canon = json.dumps({m: self.jwk[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
        self.jkt = jwt_tool.b64u(hashlib.sha256(canon.encode()).digest())

    def proof(self, token: str) -> str:
        import hashlib
        import uuid
        c = {"htm": "GET", "htu": f"{DPOP_ORIGIN}/orders", "iat": int(time.time()), "jti": uuid.uuid4().hex,
             "ath": jwt_tool.b64u(hashlib.sha256(token.encode()).digest())}
        return jwt_tool.encode(self.key, c, header={"typ": "dpop+jwt", "jwk": self.jwk}, kid=False)


class Pinned(Envoy):
    """An Envoy pinned to one core with one worker."""

    def start(self, timeout: float = 30.0):
        super().start(timeout)
        subprocess.run(["taskset", "-a", "-p", "-c", ENVOY_CORE, str(self.proc.pid)], capture_output=True, check=True)
        return self

    def cpu_ticks(self) -> int:
        f = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])

    def rss_kb(self) -> int:
        m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{self.proc.pid}/status").read_text())
        return int(m.group(1)) if m else 0


def wrk(port: int, duration: int, token: str | None = None, token_file: Path | None = None, conns: int = 16,
        dpop_file: Path | None = None, offset: list | None = None) -> dict:
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency"]
    if dpop_file:
        cmd += ["-s", str(DPOP_LUA)]
    elif token_file:
        cmd += ["-s", str(LUA)]
    elif token:
        cmd += ["-H", f"authorization: Bearer {token}"]
    cmd += [f"http://127.0.0.1:{port}/orders"]
    if dpop_file:
        cmd += ["--", str(dpop_file), "/orders", str(offset[0])]
    elif token_file:
        cmd += ["--", str(token_file), "/orders"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    if offset is not None:
        offset[0] += reqs + conns  # the next run starts past every proof this one may have sent
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": reqs,
            "p50_us": lat(50), "p99_us": lat(99), "errors": int(non2xx.group(1)) if non2xx else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-tokens", type=int, default=20000)
    ap.add_argument("--population", type=int, default=100000)
    ap.add_argument("--only", default="", help="comma-separated setup names")
    ap.add_argument("--baseline", default="", help="another build's .wasm: adds base_hot, base_hot_shared, base_exchange_hot, base_population, base_mint_cold, base_mtls_hot (with the TLS setups) and base_cold_<alg>")
    ap.add_argument("--dpop-proofs", type=int, default=200000, help="pre-made DPoP proofs per DPoP setup (each is sent once; 80 000 ran out at 6 400 req/s over 3 rounds of 5 s)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    idp = IdP(ISS).start()
    keys = {a: idp.key(a) for a in ("RS256", "ES256", "EdDSA")}
    jwks = idp.jwks()
    hot = jwt_tool.encode(keys["ES256"], jwt_tool.claims(ISS, AUD, ttl=3600, sub="bench"))

    print(f"generating {args.cold_tokens} tokens per algorithm and a population of {args.population}…", flush=True)
    files = {}
    for alg, k in keys.items():
        p = OUT / f"cold-{alg}.txt"
        p.write_text("\n".join(jwt_tool.encode(k, jwt_tool.claims(ISS, AUD, ttl=3600, sub=f"u{i}")) for i in range(args.cold_tokens)) + "\n")
        files[alg] = p
    pop = OUT / "population.txt"
    pop.write_text("\n".join(jwt_tool.encode(keys["EdDSA"], jwt_tool.claims(ISS, AUD, ttl=3600, sub=f"p{i}")) for i in range(args.population)) + "\n")

    sts = STS("https://sts.bench", idp, ["https://orders.bench", "trust.bench"]).start()
    sts_cluster = static_cluster("sts", sts.port)
    setups = {
        "bare": (bootstrap([]), dict(token=hot)),
        "wasm_floor": (bootstrap([wasm_filter(NOOP_WASM, None, "noop")]), dict(token=hot)),
        # The reference: a proxy-wasm filter that reads one header and one shared-data key
        # (bench/noop as the host-call lab) and does nothing else: the ABI's price for that work.
        "wasm_ref": (bootstrap([wasm_filter(NOOP_WASM, "hdr:authorization,shared:c/1", "ref")]), dict(token=hot)),
        # The limit a validating filter cannot beat (issue 12): only the host calls the job cannot
        # avoid: read `authorization` (a cache hit compared with a fixed token is free) and set
        # the identity header (which replaces a client's copy). Nothing else.
        "wasm_limit": (bootstrap([wasm_filter(NOOP_WASM, "hdr:authorization,set:x-user-sub", "limit")]), dict(token=hot)),
        "jwt_authn_cache": (bootstrap([jwt_authn(jwks, True)]), dict(token=hot)),
        "jwt_authn_default": (bootstrap([jwt_authn(jwks, False)]), dict(token=hot)),
        "tef_hot": (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks), "tef")]), dict(token=hot)),
        # The hot token with the worker's front off: every request a shared-data hit (SHA-256 key,
        # slot read, entry decode), which is what each request of a large population costs.
        "tef_hot_shared": (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, local_entries=0), "tef")]), dict(token=hot)),
        "tef_exchange_hot": (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, exchange=True), "tef")], [sts_cluster]), dict(token=hot)),
        # Entries live for the tokens' hour (max_ttl 3600 s): with 300 s a full run, longer than
        # five minutes after the warm-up, measured the population's expiry (round 3 of the
        # 2026-12-03 run: 12 % misses, each a verification) instead of its cached lookups.
        "tef_population": (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, max_entries=2 * args.population, max_ttl=3600), "tef")]), dict(token_file=pop)),
    }
    # Minting: the hot token's minted token from the worker's front, and every request a new token
    # verified and signed (EdDSA both ways), next to tef_cold_EdDSA (the verification alone).
    setups["tef_mint_hot"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, mint=True), "tef")]), dict(token=hot))
    setups["tef_mint_cold"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, cache=False, mint=True), "tef")]), dict(token_file=files["EdDSA"]))
    # Issue 13: an opaque token served from the claims cache after one introspection, and the
    # hot JWT with 50 providers configured (picked by `iss` through a map), next to tef_hot.
    opaque_hot = "bench-opaque-" + "x" * 32
    idp.opaque[opaque_hot] = {"sub": "bench", "scope": "read", "exp": int(time.time()) + 3600}
    setups["tef_intro_hot"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, introspection=True), "tef")], [static_cluster("idp", idp.port)]),
                               dict(token=opaque_hot))
    setups["tef_50_hot"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, extra_providers=49), "tef")]), dict(token=hot))
    # Issue 15, DPoP: one bound token (cached) with a proof per request from one client key (the
    # key's table is built from its third proof), and every request a new key with its own new
    # token (both cold: the token verified with the IdP key's table, the proof without a table).
    want = lambda n: not args.only or n in args.only.split(",")
    if want("tef_dpop_hot") or want("tef_dpop_fresh"):
        print(f"making {args.dpop_proofs} DPoP proofs per setup…", flush=True)
        client = DpopKey()
        bound = jwt_tool.encode(keys["ES256"], jwt_tool.claims(ISS, AUD, ttl=3600, sub="bench", cnf={"jkt": client.jkt}))
        p = OUT / "dpop-hot.txt"
        p.write_text("".join(f"{bound} {client.proof(bound)}\n" for _ in range(args.dpop_proofs)))
        setups["tef_dpop_hot"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, dpop=True), "tef")]), dict(dpop_file=p, offset=[0]))
        lines = []
        for i in range(args.dpop_proofs // 2):
            c = DpopKey()
            t = jwt_tool.encode(keys["ES256"], jwt_tool.claims(ISS, AUD, ttl=3600, sub=f"d{i}", cnf={"jkt": c.jkt}))
            lines.append(f"{t} {c.proof(t)}\n")
        p = OUT / "dpop-fresh.txt"
        p.write_text("".join(lines))
        setups["tef_dpop_fresh"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, cache=False, dpop=True), "tef")]), dict(dpop_file=p, offset=[0]))
    # Issue 15, mTLS-bound tokens: the hot token over a TLS listener that requires a client
    # certificate, with and without the provider checking the token's binding to it.
    if want("tef_hot_tls") or want("tef_mtls_hot"):
        (OUT / "pki").mkdir(parents=True, exist_ok=True)
        pki = Pki(OUT / "pki")
        cert, key, x5t = pki.client("bench-client")
        tls_bound = jwt_tool.encode(keys["ES256"], jwt_tool.claims(ISS, AUD, ttl=3600, sub="bench", cnf={"x5t#S256": x5t}))
        conf = tef_conf(jwks)
        setups["tef_hot_tls"] = (with_tls(bootstrap([wasm_filter(TEF_WASM, conf, "tef")]), pki), dict(token=hot, front=(cert, key)))
        conf = tef_conf(jwks)
        conf["providers"][0]["certificate_binding"] = {"required": True}
        setups["tef_mtls_hot"] = (with_tls(bootstrap([wasm_filter(TEF_WASM, conf, "tef")]), pki), dict(token=tls_bound, front=(cert, key)))
    # Issue 15, Transaction Tokens: one call to the (Python, local) Txn-Token service per request,
    # next to the cached exchange path, at low concurrency so that latency is not queueing.
    if want("tef_txn") or want("tef_exchange_hot_c2"):
        setups["tef_txn"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, txn=True), "tef")], [sts_cluster]), dict(token=hot, conns=2))
        setups["tef_exchange_hot_c2"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, exchange=True), "tef")], [sts_cluster]), dict(token=hot, conns=2))
    if args.baseline:
        base = Path(args.baseline).resolve()
        setups["base_hot"] = (bootstrap([wasm_filter(base, tef_conf(jwks), "tef")]), dict(token=hot))
        setups["base_exchange_hot"] = (bootstrap([wasm_filter(base, tef_conf(jwks, exchange=True), "tef")], [sts_cluster]), dict(token=hot))
        setups["base_mint_cold"] = (bootstrap([wasm_filter(base, tef_conf(jwks, cache=False, mint=True), "tef")]), dict(token_file=files["EdDSA"]))
        setups["base_hot_shared"] = (bootstrap([wasm_filter(base, tef_conf(jwks, local_entries=0), "tef")]), dict(token=hot))
        setups["base_population"] = (bootstrap([wasm_filter(base, tef_conf(jwks, max_entries=2 * args.population, max_ttl=3600), "tef")]), dict(token_file=pop))
        if "tef_mtls_hot" in setups:
            conf = tef_conf(jwks)
            conf["providers"][0]["certificate_binding"] = {"required": True}
            setups["base_mtls_hot"] = (with_tls(bootstrap([wasm_filter(base, conf, "tef")]), pki), dict(token=tls_bound, front=(cert, key)))
    for alg, f in files.items():
        setups[f"tef_cold_{alg}"] = (bootstrap([wasm_filter(TEF_WASM, tef_conf(jwks, cache=False), "tef")]), dict(token_file=f))
        setups[f"jwt_authn_cold_{alg}"] = (bootstrap([jwt_authn(jwks, False)]), dict(token_file=f))
        if args.baseline:  # the other build's cold path, side by side
            setups[f"base_cold_{alg}"] = (bootstrap([wasm_filter(base, tef_conf(jwks, cache=False), "tef")]), dict(token_file=f))
    if args.only:
        keep = set(args.only.split(","))
        setups = {k: v for k, v in setups.items() if k in keep}

    envoys, fronts = {}, {}
    load = {n: {k: v for k, v in kw.items() if k != "front"} for n, (_, kw) in setups.items()}
    try:
        for name, (cfg, _) in setups.items():
            envoys[name] = Pinned(cfg, concurrency=1, name=f"bench-{name}").start()
            if "front" in setups[name][1]:
                f = Envoy(tls_front(envoys[name].port, *setups[name][1]["front"]), concurrency=1, name=f"bench-front-{name}").start()
                subprocess.run(["taskset", "-a", "-p", "-c", LOAD_CORE, str(f.proc.pid)], capture_output=True, check=True)
                fronts[name] = f
        port = lambda name: (fronts.get(name) or envoys[name]).port
        # Warm-up: exchange cached, population cached (one pass), JIT warm.
        for name, e in envoys.items():
            kw = load[name]
            if name in ("tef_population", "base_population"):
                print(f"warming the cache with {args.population} tokens…", flush=True)
                passes = 0
                while True:
                    r = wrk(port(name), 10, **kw)
                    passes += r["requests"]
                    if passes >= args.population * 1.2:
                        break
            else:
                wrk(port(name), 1, **kw)
        results = {n: [] for n in envoys}
        # Counters at the start of the measured rounds: what the rounds themselves did.
        warm = {n: e.stats() for n, e in envoys.items()}
        for rnd in range(args.rounds):
            for name, e in envoys.items():
                t0 = e.cpu_ticks()
                r = wrk(port(name), args.duration, **load[name])
                r["cpu_us_per_req"] = (e.cpu_ticks() - t0) * (1e6 / os.sysconf("SC_CLK_TCK")) / max(r["requests"], 1)
                r["rss_mb"] = e.rss_kb() / 1024
                results[name].append(r)
                print(f"round {rnd + 1} {name:24s} {r['rps']:9.0f} req/s  p50 {r['p50_us'] or 0:7.0f}µs  p99 {r['p99_us'] or 0:7.0f}µs  "
                      f"{r['cpu_us_per_req']:6.1f} µs CPU/req  errors {r['errors']}", flush=True)
        summary = {}
        for name, runs in results.items():
            med = lambda k: statistics.median(x[k] for x in runs if x[k] is not None) if any(x[k] is not None for x in runs) else None
            summary[name] = {k: med(k) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req", "rss_mb")}
            summary[name]["errors"] = sum(x["errors"] for x in runs)
            # Per round too: ratios paired within a round are steadier than ratios of medians
            # when the machine's load drifts between rounds.
            summary[name]["rounds"] = [{"rps": x["rps"], "cpu_us_per_req": x["cpu_us_per_req"]} for x in runs]
            summary[name]["stats"] = {k: v for k, v in envoys[name].stats().items()
                                      if k in ("allowed", "cache_hit", "cache_miss", "exchange_cache_hit", "exchange_ok", "mint_ok", "mint_cache_hit",
                                              "introspection_ok", "introspection_cache_hit", "dpop_ok", "denied.dpop_replay",
                                              "certificate_bound", "txn_token_ok")}
            summary[name]["stats_measured"] = {k: v - warm[name].get(k, 0) for k, v in summary[name]["stats"].items()}
    finally:
        for e in [*envoys.values(), *fronts.values()]:
            e.stop()
        idp.stop()
        sts.stop()
    write(summary, args)


def write(summary: dict, args):
    def ratio(a, b, k="rps"):
        try:
            return summary[a][k] / summary[b][k]
        except (KeyError, TypeError, ZeroDivisionError):
            return None
    ratios = {
        "tef_hot / wasm_floor (rps, target ≥ 0.95)": ratio("tef_hot", "wasm_floor"),
        "tef_hot / wasm_ref (rps: our work beyond the ABI's price of a header and a shared-data read)": ratio("tef_hot", "wasm_ref"),
        "wasm_ref / wasm_floor (rps: the reference filter itself)": ratio("wasm_ref", "wasm_floor"),
        "tef_hot / jwt_authn_default (rps, target ≥ 3)": ratio("tef_hot", "jwt_authn_default"),
        "wasm_floor / jwt_authn_default (rps: the most any proxy-wasm filter can reach)": ratio("wasm_floor", "jwt_authn_default"),
        "tef_hot / jwt_authn_cache (rps)": ratio("tef_hot", "jwt_authn_cache"),
        "tef_exchange_hot / tef_hot (rps, target ≥ 0.9)": ratio("tef_exchange_hot", "tef_hot"),
        "tef_population / tef_hot (rps, target ≥ 1/1.2)": ratio("tef_population", "tef_hot"),
        "tef_population / tef_hot_shared (rps: the population's price beyond a shared-data hit)": ratio("tef_population", "tef_hot_shared"),
        "tef_hot_shared / tef_hot (rps: what the worker's front saves)": ratio("tef_hot_shared", "tef_hot"),
        "wasm_floor / bare (rps)": ratio("wasm_floor", "bare"),
        "tef_mint_hot / tef_hot (rps, a cached minted request, target ≥ 0.95)": ratio("tef_mint_hot", "tef_hot"),
        "tef_intro_hot / tef_hot (rps, an introspected token from the cache, target ≥ 0.95)": ratio("tef_intro_hot", "tef_hot"),
        "tef_50_hot / tef_hot (rps, 50 providers vs one, target ≥ 0.98)": ratio("tef_50_hot", "tef_hot"),
        "tef_hot / base_hot (rps: this build vs --baseline)": ratio("tef_hot", "base_hot"),
        "tef_exchange_hot / base_exchange_hot (rps: this build vs --baseline)": ratio("tef_exchange_hot", "base_exchange_hot"),
    }
    def per_round(f, *names):
        """f over each round's values of `names` (the same round for all): median and the list."""
        if not all(summary.get(n) for n in names):
            return None
        vals = []
        for rs in zip(*(summary[n]["rounds"] for n in names)):
            try:
                vals.append(f(*rs))
            except ZeroDivisionError:
                pass
        return (statistics.median(vals), vals) if vals else None
    cpu_over = lambda a, b, fl: (a["cpu_us_per_req"] - fl["cpu_us_per_req"]) / (b["cpu_us_per_req"] - fl["cpu_us_per_req"])
    ratios["tef_hot added / wasm_limit added, paired per round (CPU, target ≤ 1.2)"] = per_round(cpu_over, "tef_hot", "wasm_limit", "wasm_floor")
    for alg in ("ES256", "EdDSA", "RS256"):
        ratios[f"tef_cold_{alg} / base_cold_{alg}, paired per round (CPU/req: this build vs --baseline)"] = per_round(
            lambda a, b: a["cpu_us_per_req"] / b["cpu_us_per_req"], f"tef_cold_{alg}", f"base_cold_{alg}")
    ratios["tef_mint_cold / base_mint_cold, paired per round (CPU/req: this build vs --baseline)"] = per_round(
        lambda a, b: a["cpu_us_per_req"] / b["cpu_us_per_req"], "tef_mint_cold", "base_mint_cold")
    ratios["tef_hot added / base_hot added, paired per round (CPU over wasm_floor: this build vs --baseline)"] = per_round(cpu_over, "tef_hot", "base_hot", "wasm_floor")
    ratios["tef_mtls_hot / base_mtls_hot, paired per round (CPU/req: this build vs --baseline)"] = per_round(
        lambda a, b: a["cpu_us_per_req"] / b["cpu_us_per_req"], "tef_mtls_hot", "base_mtls_hot")
    ratios["tef_population / base_population, paired per round (CPU/req: this build vs --baseline)"] = per_round(
        lambda a, b: a["cpu_us_per_req"] / b["cpu_us_per_req"], "tef_population", "base_population")
    ratios["tef_mint_hot / tef_hot, paired per round (rps, target ≥ 0.95)"] = per_round(lambda m, h: m["rps"] / h["rps"], "tef_mint_hot", "tef_hot")
    ratios["tef_mint_hot added / tef_hot added, paired per round (CPU over wasm_floor)"] = per_round(cpu_over, "tef_mint_hot", "tef_hot", "wasm_floor")
    floor = summary.get("wasm_floor")
    lim, hot = summary.get("wasm_limit"), summary.get("tef_hot")
    if lim and hot and floor:
        added = (hot["cpu_us_per_req"] - floor["cpu_us_per_req"], lim["cpu_us_per_req"] - floor["cpu_us_per_req"])
        ratios["tef_hot vs wasm_limit: CPU µs/req added over wasm_floor"] = added
        if added[1] > 0:
            ratios["tef_hot added / wasm_limit added (CPU, target ≤ 1.2)"] = added[0] / added[1]
    dh, df, ce = summary.get("tef_dpop_hot"), summary.get("tef_dpop_fresh"), summary.get("tef_cold_ES256")
    if dh and ce:
        ratios["tef_dpop_hot / tef_cold_ES256 (CPU/req: a cached token + one ES256 proof vs a cold ES256 token, target ≤ 1.2)"] = (
            dh["cpu_us_per_req"] / ce["cpu_us_per_req"])
    if hot and dh and df and ce:
        ratios["DPoP proof, key reused vs key new each request: CPU µs/req added (over tef_hot; over tef_cold_ES256)"] = (
            dh["cpu_us_per_req"] - hot["cpu_us_per_req"], df["cpu_us_per_req"] - ce["cpu_us_per_req"])
    tx, xc = summary.get("tef_txn"), summary.get("tef_exchange_hot_c2")
    if tx and xc and tx["p50_us"] and xc["p50_us"]:
        ratios["tef_txn vs tef_exchange_hot_c2: latency added by the Txn-Token call, p50 / p99 µs"] = (
            tx["p50_us"] - xc["p50_us"], tx["p99_us"] - xc["p99_us"])
    mt, ht = summary.get("tef_mtls_hot"), summary.get("tef_hot_tls")
    if mt and ht:
        ratios["tef_mtls_hot / tef_hot_tls (rps, the certificate binding on a cached token, same TLS listener, target ≥ 0.95)"] = mt["rps"] / ht["rps"]
        ratios["tef_mtls_hot vs tef_hot_tls: CPU µs/req of the bench Envoy"] = (mt["cpu_us_per_req"], ht["cpu_us_per_req"])
    mc, vc = summary.get("tef_mint_cold"), summary.get("tef_cold_EdDSA")
    if mc and vc and floor:
        # CPU per request each adds over the floor: verify + sign, and verify alone.
        ratios["cold mint vs cold verify (EdDSA): CPU µs/req added over wasm_floor"] = (
            mc["cpu_us_per_req"] - floor["cpu_us_per_req"], vc["cpu_us_per_req"] - floor["cpu_us_per_req"])
    for name in ("tef_population", "base_population"):
        st = (summary.get(name) or {}).get("stats_measured") or {}
        if st.get("cache_hit", 0) + st.get("cache_miss", 0) > 0:
            # Each miss is a full verification and a new cache entry.
            ratios[f"{name}: claims-cache misses per lookup in the measured rounds"] = st.get("cache_miss", 0) / (st.get("cache_hit", 0) + st.get("cache_miss", 0))
    for mine, base in (("tef_hot", "base_hot"), ("tef_exchange_hot", "base_exchange_hot"), ("tef_population", "base_population"), ("tef_hot_shared", "base_hot_shared")):
        if floor and summary.get(mine) and summary.get(base):
            ratios[f"{mine} vs {base}: CPU µs/req added over wasm_floor"] = (
                summary[mine]["cpu_us_per_req"] - floor["cpu_us_per_req"], summary[base]["cpu_us_per_req"] - floor["cpu_us_per_req"])
    for alg in ("RS256", "ES256", "EdDSA"):
        t, n, floor = summary.get(f"tef_cold_{alg}"), summary.get(f"jwt_authn_cold_{alg}"), summary.get("wasm_floor")
        if t and n and floor:
            ratios[f"cold {alg}: CPU µs/req tef / jwt_authn (target {'≤ 1.5' if alg == 'EdDSA' else '≤ 3'})"] = t["cpu_us_per_req"] / n["cpu_us_per_req"]
            bare = summary.get("bare")
            if bare:
                ratios[f"cold {alg}: µs added over bare, tef vs jwt_authn"] = (
                    t["cpu_us_per_req"] - bare["cpu_us_per_req"], n["cpu_us_per_req"] - bare["cpu_us_per_req"])
    machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores; {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}"
    data = {"date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z", "machine": machine,
            "args": vars(args), "wasm_bytes": TEF_WASM.stat().st_size, "setups": summary, "ratios": ratios}
    (OUT / "results.json").write_text(json.dumps(data, indent=1))
    full = not args.only
    if full:
        (ROOT / "bench" / "results.json").write_text(json.dumps(data, indent=1))
    lines = [f"# Benchmark results", "", f"{data['date']} on {machine}.",
             f"Envoy 1.40 (PyPI), --concurrency 1 pinned to core {ENVOY_CORE}; wrk -t1 -c16 pinned to core {LOAD_CORE}; "
             f"direct_response; {args.rounds} interleaved rounds of {args.duration}s, medians. .wasm {data['wasm_bytes']} bytes.", "",
             "| setup | req/s | p50 µs | p99 µs | CPU µs/req | RSS MB | non-2xx |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in summary.items():
        f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"
        lines.append(f"| {name} | {f(s['rps'])} | {f(s['p50_us'])} | {f(s['p99_us'])} | {f(s['cpu_us_per_req'], 1)} | {f(s['rss_mb'], 1)} | {s['errors']} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    for k, v in ratios.items():
        if isinstance(v, tuple) and isinstance(v[1], list):
            lines.append(f"| {k} | {v[0]:.2f} (per round {', '.join(f'{x:.2f}' for x in v[1])}) |")
        elif isinstance(v, tuple):
            lines.append(f"| {k} | {v[0]:.1f} vs {v[1]:.1f} |")
        elif v is not None:
            lines.append(f"| {k} | {v:.2f} |")
    (ROOT / "bench" / "RESULTS.md" if full else OUT / "RESULTS.md").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(ROOT / "bench"))
    import chart  # noqa: E402
    (ROOT / "bench" / "chart.svg" if full else OUT / "chart.svg").write_text(chart.svg(data))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
