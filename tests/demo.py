"""The demo: a real Envoy with the filter, a local IdP and an echo upstream, on 127.0.0.1.
Shows requests accepted (with the identity the upstream receives) and refused.
`--serve` keeps everything running for your own curl until Ctrl-C."""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "e2e"))

import jwt_tool  # noqa: E402
from harness import ROOT, Envoy, bootstrap, static_cluster  # noqa: E402
from servers import Echo, IdP  # noqa: E402

ISS, AUD = "https://idp.example.com", "https://api.example.com"


def show(title, r, upstream=("x-user-sub", "x-user-scope", "x-principal", "authorization")):
    print(f"\n--- {title}\n    HTTP {r.status}")
    if r.status == 200:
        seen = r.upstream_headers
        for h in upstream:
            v = seen.get(h, ["(absent)"])[0]
            print(f"    upstream saw {h}: {v[:60] + '…' if len(v) > 60 else v}")
    else:
        print(f"    www-authenticate: {r.header('www-authenticate')}")
        print(f"    body: {r.body.decode().strip()}")


def main():
    idp, echo = IdP(ISS).start(), Echo().start()
    cfg = json.loads((ROOT / "envoy" / "plugin-config.example.json").read_text())
    envoy = Envoy(bootstrap(cfg, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]), name="demo")
    envoy.start()
    try:
        print(f"Envoy listening on 127.0.0.1:{envoy.port} (admin {envoy.admin_port}), IdP on {idp.port}, echo upstream on {echo.port}")
        print(f"plugin configuration: envoy/plugin-config.example.json; Envoy log: {envoy.log_path}")
        good = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD, sub="alice", scope="orders:read profile"))
        show("valid ES256 token from the IdP, plus a spoofed x-user-sub", envoy.get("/orders/42", {
            "authorization": f"Bearer {good}", "x-user-sub": "admin"}))
        show("no token", envoy.get("/orders/42"))
        expired = jwt_tool.encode(idp.key("RS256"), jwt_tool.claims(ISS, AUD, ttl=-300))
        show("expired RS256 token", envoy.get("/orders/42", {"authorization": f"Bearer {expired}"}))
        forged = jwt_tool.encode(jwt_tool.Key("EdDSA", kid=idp.key("EdDSA").kid), jwt_tool.claims(ISS, AUD, sub="mallory"))
        show("EdDSA token signed by an attacker's key under the IdP's kid", envoy.get("/orders/42", {"authorization": f"Bearer {forged}"}))
        show("anonymous health check", envoy.get("/healthz"))
        stats = envoy.stats()
        print("\n--- counters (/stats/prometheus has them too)")
        for k in ("allowed", "allowed_anonymous", "denied.missing", "denied.expired", "denied.signature", "cache_hit", "cache_miss", "jwks_fetch_ok"):
            print(f"    token_exchange_filter.{k}: {stats.get(k, 0)}")
        if "--serve" in sys.argv:
            print(f"\nServing. Try:\n  curl -i http://127.0.0.1:{envoy.port}/orders -H 'authorization: Bearer {good}'\nCtrl-C to stop.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        envoy.stop()
        idp.stop()
        echo.stop()


if __name__ == "__main__":
    main()
