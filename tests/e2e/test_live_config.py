"""Live configuration through Envoy's own dynamic configuration: the filter's configuration comes
by ECDS from a file Envoy watches (`path_config_source` + `watched_directory`). Under steady load
from wrk the configuration is swapped (a new audience, a new route, a rotated signing key): no
request fails, a forged token is refused throughout, the new rules hold afterwards, the JWKS is
not fetched again (shared data survives the swap) while cached verifications and minted tokens
are dropped (their keys include the configuration's fingerprint), and a bad configuration is
refused while the previous one keeps serving."""
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, check_schema, static_cluster, wait_for, wasm_http_filter
from servers import Echo, IdP

ISS = "https://idp.live.test"
OLD_AUD, NEW_AUD = "https://old.ecomm.com", "https://new.ecomm.com"
EDGE = "https://edge.live.test"
LUA = Path(__file__).parent / "tokens.lua"


def plugin(audiences, signing_keys, extra_routes=()):
    return {
        "providers": [{"name": "idp", "issuer": ISS, "audiences": audiences, "jwks": {"cluster": "idp", "path": "/jwks"}}],
        "signing": {"issuer": EDGE, "ttl_seconds": 60, "jwks_path": "/.well-known/edge-jwks.json", "keys": signing_keys},
        "routes": [*extra_routes, {"match": {"path_prefix": "/mint"}, "mint": {"audience": "https://orders.ecomm.com"}},
                   {"match": {"path_prefix": "/"}}],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}},
    }


def write_ecds(directory: Path, plugin_config, version: int, valid: bool = True):
    """Atomically replaces the ECDS file (Envoy watches the directory for moves)."""
    if valid:
        check_schema(plugin_config)
    filt = wasm_http_filter(plugin_config)
    resource = {"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", "name": "tef",
                "typed_config": filt["typed_config"]}
    tmp = directory / f".ecds-{version}.json"
    tmp.write_text(json.dumps({"version_info": str(version), "resources": [resource]}))
    os.rename(tmp, directory / "ecds.json")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("ecds")
    idp = IdP(ISS, algs=("ES256",)).start()
    echo = Echo().start()
    k1, k2 = jwt_tool.Key("EdDSA", kid="edge-1"), jwt_tool.Key("EdDSA", kid="edge-2")
    v1 = plugin([OLD_AUD], [{"kid": k1.kid, "alg": "EdDSA", "private_jwk": k1.private_jwk()}])
    write_ecds(d, v1, 1)
    cfg = bootstrap({"providers": []}, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)])
    cfg["node"] = {"id": "edge-1", "cluster": "edge"}  # xDS (ECDS) needs a node identity
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"][0] = {"name": "tef", "config_discovery": {
        "config_source": {"path_config_source": {"path": str(d / "ecds.json"), "watched_directory": {"path": str(d)}},
                          "resource_api_version": "V3"},
        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}
    envoy = start_envoy(Envoy(cfg, name="live-config", schema_check=False))
    yield d, idp, echo, envoy, k1, k2
    stop_all(envoy, idp, echo)


def token(idp, aud, **extra):
    return jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, aud, sub="alice", ttl=600, **extra))


def ecds_stat(envoy, name):
    body = envoy.admin("/stats?filter=extension_config_discovery").body.decode()
    m = re.search(rf"extension_config_discovery\.\S*tef\.{name}: (\d+)", body)
    return int(m.group(1)) if m else 0


def test_swapping_the_configuration_under_load(stack):
    d, idp, echo, envoy, k1, k2 = stack
    both = token(idp, [OLD_AUD, NEW_AUD])
    wait_for(lambda: envoy.get("/", [("authorization", f"Bearer {both}")]).status == 200, what="the first ECDS config")
    old_only = token(idp, OLD_AUD)
    assert envoy.get("/", [("authorization", f"Bearer {old_only}")]).status == 200
    minted_before = envoy.get("/mint", [("authorization", f"Bearer {both}")]).upstream_headers["authorization"][0]
    jwks_before, reloads = idp.jwks_requests, ecds_stat(envoy, "config_reload")

    toks = d / "tokens.txt"
    toks.write_text(both + "\n")
    wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d6s", "-s", str(LUA), f"http://127.0.0.1:{envoy.port}/", "--", str(toks)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    forged = jwt_tool.encode(jwt_tool.Key("ES256", kid=idp.key("ES256").kid), jwt_tool.claims(ISS, [OLD_AUD, NEW_AUD]))
    forged_statuses, stop = [], threading.Event()

    def probe():
        while not stop.is_set():
            try:
                forged_statuses.append(envoy.get("/", [("authorization", f"Bearer {forged}")]).status)
            except OSError as e:
                forged_statuses.append(repr(e))
            time.sleep(0.02)
    t = threading.Thread(target=probe)
    t.start()
    time.sleep(2)
    v2 = plugin([NEW_AUD], [{"kid": k2.kid, "alg": "EdDSA", "private_jwk": k2.private_jwk()},
                            {"kid": k1.kid, "alg": "EdDSA", "public_jwk": k1.public_jwk(), "retired": True}],
                extra_routes=[{"match": {"path_prefix": "/admin"}, "require": {"scopes_all": ["admin"]}}])
    write_ecds(d, v2, 2)
    wait_for(lambda: ecds_stat(envoy, "config_reload") > reloads, what="the ECDS update")
    time.sleep(1.5)
    write_ecds(d, {**v2, "providerz": []}, 3, valid=False)  # a bad configuration: refused, v2 keeps serving
    try:
        out, _ = wrk.communicate(timeout=30)
    finally:
        stop.set()
        t.join()

    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) > 500, out
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    assert forged_statuses and set(forged_statuses) == {401}, forged_statuses
    # The new rules hold.
    assert envoy.get("/", [("authorization", f"Bearer {old_only}")]).status == 401, "the old audience is gone"
    assert envoy.get("/", [("authorization", f"Bearer {token(idp, NEW_AUD)}")]).status == 200
    assert envoy.get("/admin/x", [("authorization", f"Bearer {both}")]).status == 403, "the new route's rule"
    assert envoy.get("/admin/x", [("authorization", f"Bearer {token(idp, NEW_AUD, scope='admin')}")]).status == 200
    # The rotated key signs; both keys are served for the next hops.
    minted = envoy.get("/mint", [("authorization", f"Bearer {both}")]).upstream_headers["authorization"][0]
    assert jwt_tool.decode_unverified(minted[7:])[0]["kid"] == k2.kid
    assert jwt_tool.decode_unverified(minted_before[7:])[0]["kid"] == k1.kid
    served = json.loads(envoy.get("/.well-known/edge-jwks.json").body)
    assert {k["kid"] for k in served["keys"]} == {k1.kid, k2.kid}
    # The JWKS survived the swap in shared data: not fetched again.
    assert idp.jwks_requests == jwks_before, (jwks_before, idp.jwks_requests)
    # The bad configuration was refused, the good one kept.
    wait_for(lambda: ecds_stat(envoy, "config_fail") >= 1, what="the refused update")
    assert envoy.get("/", [("authorization", f"Bearer {token(idp, NEW_AUD)}")]).status == 200
