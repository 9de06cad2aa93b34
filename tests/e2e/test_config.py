"""A bad plugin configuration is refused at load (on_configure returns false) with one log line
naming the field, checked with `envoy --mode validate`, which runs on_vm_start/on_configure."""
import copy
import json
import subprocess

import pytest

from harness import ROOT, bootstrap, envoy_binary, static_cluster, validate

EXAMPLE = json.loads((ROOT / "envoy" / "plugin-config.example.json").read_text())
CLUSTERS = [static_cluster("idp", 1), static_cluster("upstream", 2)]


def test_example_config_is_accepted():
    rc, out = validate(bootstrap(EXAMPLE, CLUSTERS))
    assert rc == 0, out
    assert "token-exchange-filter configured" in out


def _mut(path, value):
    def f(c):
        node = c
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return f


BAD = [
    ("unknown field", _mut(["cache", "max_entry"], 5), "cache.max_entry: unknown field"),
    ("bad JWK", _mut(["providers", 1, "jwks", "inline", "keys", 0, "x"], "AAAA"), "providers[1].jwks.inline.keys[0]: Ed25519 `x` must be 32 bytes"),
    ("wildcard", _mut(["providers", 0, "audiences", 1], "api.*.com"), "providers[0].audiences[1]: wildcard in the wrong place"),
    ("unknown provider", _mut(["routes", 1, "providers"], ["corp", "ghost"]), 'routes[1].providers[1]: unknown provider "ghost"'),
    ("missing cluster", lambda c: c["providers"][0]["jwks"].pop("cluster"), "providers[0].jwks.cluster: is required"),
    ("HS256", _mut(["providers", 0, "algorithms"], ["HS256"]), "providers[0].algorithms[0]"),
    ("not JSON", None, "invalid plugin configuration: (root)"),
]


@pytest.mark.parametrize("name,mutate,expect", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_refused_naming_the_field(name, mutate, expect):
    if mutate is None:
        conf = "{not json"
    else:
        conf = copy.deepcopy(EXAMPLE)
        mutate(conf)
    rc, out = validate(bootstrap(conf, CLUSTERS))
    assert rc != 0, out[-3000:]
    lines = [l for l in out.splitlines() if "invalid plugin configuration" in l]
    assert len(lines) == 1, out[-3000:]
    assert expect in lines[0], lines[0]


@pytest.mark.parametrize("example", ["edge-gateway", "edge-gateway-ext-authz", "sidecar-inbound", "sidecar-outbound"])
def test_shipped_envoy_examples_validate(example):
    import os

    import jwt_tool
    # The outbound sidecar reads its signing key from the environment, as it would in a pod.
    env = {**os.environ, "TEF_SIGNING_JWK": json.dumps(jwt_tool.Key("EdDSA").private_jwk())}
    p = subprocess.run([envoy_binary(), "--mode", "validate", "-c", f"envoy/{example}.yaml", "--disable-hot-restart"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert "token-exchange-filter configured" in p.stdout + p.stderr
    if example == "sidecar-outbound":
        env.pop("TEF_SIGNING_JWK")
        p = subprocess.run([envoy_binary(), "--mode", "validate", "-c", f"envoy/{example}.yaml", "--disable-hot-restart"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode != 0 and "signing.private_jwk_env" in p.stdout + p.stderr


def test_exchange_example_config_is_accepted():
    conf = json.loads((ROOT / "envoy" / "plugin-config.exchange.json").read_text())
    rc, out = validate(bootstrap(conf, CLUSTERS + [static_cluster("sts", 3)]))
    assert rc == 0, out[-3000:]
    assert "token-exchange-filter configured" in out


def test_phantom_token_example_config_is_accepted():
    """The edge example for opaque tokens: discovery, introspection, require, mint (the signing key
    from the environment)."""
    import os

    import jwt_tool
    conf = json.loads((ROOT / "envoy" / "plugin-config.phantom.json").read_text())
    env = {**os.environ, "TEF_SIGNING_JWK": json.dumps(jwt_tool.Key("EdDSA").private_jwk())}
    rc, out = validate(bootstrap(conf, CLUSTERS, env_keys=["TEF_SIGNING_JWK"]), env=env)
    assert rc == 0, out[-3000:]
    assert "token-exchange-filter configured" in out


def test_check_config_tool_answers_ok_or_the_field(tmp_path):
    """tools/check-config.py: a plugin JSON (or WasmPlugin YAML) alone through the real parser."""
    import sys
    tool = str(ROOT / "tools" / "check-config.py")
    p = subprocess.run([sys.executable, tool, str(ROOT / "envoy" / "plugin-config.example.json")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("OK") and "2 providers" in p.stdout, p.stdout + p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"providers": [{"name": "a", "issuer": "x", "audiences": ["y"], "jwks": {"cluster": "c", "path": "jwks"}}]}))
    p = subprocess.run([sys.executable, tool, str(bad)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "REFUSED" in p.stdout and "providers[0].jwks.path" in p.stdout, p.stdout + p.stderr
