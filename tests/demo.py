"""The demo: a real Envoy with the filter, a local IdP, a local STS and an echo upstream, on
127.0.0.1. Shows a request whose token is exchanged for one meant for the upstream it is routed
to, a second hop (the edge mints a token for "catalog"; catalog's own sidecar, a second Envoy,
verifies it against the JWKS the edge serves), and requests refused.
`--serve` keeps everything running for your own curl until Ctrl-C."""
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "e2e"))

import jwt_tool  # noqa: E402
from harness import ROOT, Envoy, bootstrap, remove_temp_dirs, request, static_cluster  # noqa: E402
from servers import STS, Echo, IdP, free_port  # noqa: E402

ISS, AUD = "https://idp.example.com", "https://api.example.com"
EDGE, CATALOG = "https://edge.ecomm.com", "https://catalog.ecomm.com"
EDGE_JWKS = "/.well-known/edge-jwks.json"


def on_port(boot: dict, port: int) -> dict:
    boot["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = port
    return boot


def catalog_sidecar(port: int, edge_port: int, upstream_port: int) -> Envoy:
    """Catalog's inbound sidecar: only tokens the edge minted for catalog pass."""
    plugin = {"providers": [{"name": "edge", "issuer": EDGE, "audiences": [CATALOG],
                             "jwks": {"cluster": "edge", "path": EDGE_JWKS, "timeout_ms": 2000}}],
              # Identity headers are set here from the token verified here, never passed on.
              "forward": {"claims_to_headers": {"sub": "x-user-sub", "scope": "x-user-scope"}, "principal_header": "x-principal"}}
    clusters = [static_cluster("edge", edge_port), static_cluster("upstream", upstream_port)]
    return Envoy(on_port(bootstrap(plugin, clusters), port), concurrency=1, name="demo-catalog")


def show(title, r, upstream=("x-user-sub", "x-user-scope", "x-principal", "authorization")):
    print(f"\n--- {title}\n    HTTP {r.status}")
    if r.status == 200:
        seen = r.upstream_headers
        for h in upstream:
            v = seen.get(h, ["(absent)"])[0]
            print(f"    upstream saw {h}: {v[:60] + '…' if len(v) > 60 else v}")
        auth = seen.get("authorization", [""])[0]
        if auth.startswith("Bearer ") and auth.count(".") == 2:
            _, claims = jwt_tool.decode_unverified(auth[7:])
            keep = {k: claims[k] for k in ("iss", "aud", "sub", "scope", "act", "sub_id") if k in claims}
            print(f"    that token's claims: {json.dumps(keep)}")
    else:
        print(f"    www-authenticate: {r.header('www-authenticate')}")
        print(f"    body: {r.body.decode().strip()}")


def main():
    # `kill <pid>` stops the demo as Ctrl-C does: Envoy and the local servers go down with it.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    idp, echo = IdP(ISS).start(), Echo().start()
    idp.demo_audience = AUD  # serves fresh client tokens on /demo-token (the demo only)
    sts = STS("https://sts.example.com", idp, ["https://orders.ecomm.com", "https://inventory.ecomm.com"]).start()
    cfg = json.loads((ROOT / "envoy" / "plugin-config.exchange.json").read_text())
    # The second hop: the edge mints tokens for catalog with a key it gets from its environment
    # (vm_config.environment_variables.host_env_keys), and serves the public half.
    key = jwt_tool.Key("EdDSA", kid="edge-demo")
    cfg["signing"] = {"issuer": EDGE, "kid": key.kid, "alg": "EdDSA", "private_jwk_env": "TEF_EDGE_JWK",
                      "ttl_seconds": 60, "jwks_path": EDGE_JWKS}
    cfg["routes"].insert(1, {"match": {"cluster": "catalog"}, "mint": {"audience": CATALOG}})
    edge_port, catalog_port = free_port(), free_port()
    clusters = [static_cluster("idp", idp.port), static_cluster("sts", sts.port), static_cluster("upstream", echo.port),
                static_cluster("catalog", catalog_port)]
    routes = [{"name": "catalog", "match": {"prefix": "/catalog"}, "route": {"cluster": "catalog"}},
              {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
    boot = on_port(bootstrap(cfg, clusters, routes, env_keys=["TEF_EDGE_JWK"]), edge_port)
    envoy = Envoy(boot, name="demo", env={"TEF_EDGE_JWK": json.dumps(key.private_jwk())})
    envoy.start()
    catalog = catalog_sidecar(catalog_port, edge_port, echo.port)
    catalog.start()
    try:
        print(f"Envoy listening on 127.0.0.1:{envoy.port} (admin {envoy.admin_port}); IdP on {idp.port}, "
              f"STS on {sts.port}, echo upstream on {echo.port}")
        print(f"plugin configuration: envoy/plugin-config.exchange.json; Envoy log: {envoy.log_path}")
        good = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD, sub="alice", scope="orders:read profile"))
        print(f"\nclient token (aud {AUD}): {good[:50]}…")
        show("GET /orders/42 with the client token and a spoofed x-user-sub: exchanged at the STS", envoy.get("/orders/42", {
            "authorization": f"Bearer {good}", "x-user-sub": "admin"}))
        show("GET /orders/43 again: exchanged token from the cache", envoy.get("/orders/43", {"authorization": f"Bearer {good}"}))
        print(f"    (the STS was called {sts.token_requests} time(s))")
        show("GET /profile: a route without exchange forwards the client token as is", envoy.get("/profile", {
            "authorization": f"Bearer {good}"}))
        narrow = jwt_tool.encode(idp.key("EdDSA"), jwt_tool.claims(ISS, AUD, sub="bob", scope="profile"))
        show("GET /orders/42 with a token lacking orders:read (no STS call)", envoy.get("/orders/42", {"authorization": f"Bearer {narrow}"}))
        show("no token", envoy.get("/orders/42"))
        expired = jwt_tool.encode(idp.key("RS256"), jwt_tool.claims(ISS, AUD, ttl=-300))
        show("expired RS256 token", envoy.get("/orders/42", {"authorization": f"Bearer {expired}"}))
        forged = jwt_tool.encode(jwt_tool.Key("EdDSA", kid=idp.key("EdDSA").kid), jwt_tool.claims(ISS, AUD, sub="mallory"))
        show("EdDSA token signed by an attacker's key under the IdP's kid", envoy.get("/orders/42", {"authorization": f"Bearer {forged}"}))
        show("GET /catalog/7: the edge mints a token for catalog; catalog's own sidecar (a second Envoy) "
             "verifies it against the JWKS the edge serves", envoy.get("/catalog/7", {"authorization": f"Bearer {good}"}))
        show("the client's own token sent straight to catalog's sidecar: not meant for catalog",
             request(catalog.port, "/catalog/7", {"authorization": f"Bearer {good}"}))
        show("anonymous health check", envoy.get("/healthz"))
        stats = envoy.stats()
        print("\n--- counters (/stats/prometheus has them too)")
        for k in ("allowed", "allowed_anonymous", "denied.missing", "denied.expired", "denied.signature", "denied.insufficient_scope",
                  "cache_hit", "cache_miss", "jwks_fetch_ok", "exchange_ok", "exchange_cache_hit", "exchange_cache_miss"):
            print(f"    token_exchange_filter.{k}: {stats.get(k, 0)}")
        if "--serve" in sys.argv:
            print(f"\nServing. Try (a token lives five minutes; each curl below gets a fresh one from the demo IdP):\n"
                  f"  curl -i http://127.0.0.1:{envoy.port}/orders/42 -H \"authorization: Bearer $(curl -s http://127.0.0.1:{idp.port}/demo-token)\"\n"
                  f"  metrics: curl -s http://127.0.0.1:{envoy.admin_port}/stats/prometheus | grep token_exchange_filter\n"
                  f"Ctrl-C (or kill {os.getpid()}) to stop.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        envoy.stop()
        catalog.stop()
        for srv in (idp, sts, echo):
            srv.stop()
        remove_temp_dirs()


if __name__ == "__main__":
    main()
