"""The shipped JSON Schema in use: docs/configuration.md is generated from it, every example
configuration in the repository validates against it (the JSON files and the configurations in
the Envoy and Istio YAML), the Istio manifests validate against the WasmPlugin CRD's OpenAPI
schema, and each manifest's pluginConfig loads in a real Envoy (`--mode validate`)."""
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness import ROOT, bootstrap, check_schema, plugin_configs, static_cluster, validate

EXAMPLES = sorted((ROOT / "envoy").glob("plugin-config*.json"))
ENVOY_YAML = sorted(p for p in (ROOT / "envoy").glob("*.yaml")
                    if not p.name.startswith("istio-") and (yaml.safe_load(p.read_text()) or {}).get("static_resources"))
ISTIO = sorted((ROOT / "envoy").glob("istio-*.yaml"))


def manifests(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_docs_are_generated_from_the_schema():
    p = subprocess.run([sys.executable, str(ROOT / "schema" / "gen_docs.py"), "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads((ROOT / "schema" / "plugin-config.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    # And it refuses what the filter refuses: an unknown field, a missing provider list, a bad bound.
    v = jsonschema.Draft202012Validator(schema)
    good = json.loads(EXAMPLES[0].read_text())
    for bad in ({**good, "providerz": []}, {k: x for k, x in good.items() if k != "providers"}, {**good, "max_token_bytes": 10}):
        assert not v.is_valid(bad)


@pytest.mark.parametrize("path", EXAMPLES + ENVOY_YAML + ISTIO, ids=lambda p: p.name)
def test_every_example_configuration_validates(path):
    if path.suffix == ".json":
        configs = [json.loads(path.read_text())]
    elif path in ISTIO:
        configs = [m["spec"]["pluginConfig"] for m in manifests(path) if m.get("kind") == "WasmPlugin"]
    else:
        configs = plugin_configs(yaml.safe_load(path.read_text()))
    assert configs, f"no plugin configuration found in {path.name}"
    for c in configs:
        check_schema(c)


def crd_schema() -> dict:
    crd = yaml.safe_load((ROOT / "schema" / "istio-wasmplugin-crd.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("path", ISTIO, ids=lambda p: p.name)
def test_istio_manifests_validate_against_the_crd_and_load_in_envoy(path):
    schema = crd_schema()
    plugins = [m for m in manifests(path) if m.get("kind") == "WasmPlugin"]
    assert plugins
    for m in plugins:
        assert m["apiVersion"] == "extensions.istio.io/v1alpha1"
        jsonschema.Draft7Validator(schema).validate(m)
        # The CRD refuses what Kubernetes would: a misspelled phase.
        bad = json.loads(json.dumps(m))
        bad["spec"]["phase"] = "AUTHENTICATION"
        assert not jsonschema.Draft7Validator(schema).is_valid(bad)
        # The pluginConfig through the filter's own parser, in a real Envoy.
        env_keys = [e["name"] for e in m["spec"].get("vmConfig", {}).get("env", []) if "name" in e]
        env = {k: json.dumps({"kty": "OKP", "crv": "Ed25519", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
                              "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}) for k in env_keys}
        import os
        rc, out = validate(bootstrap(m["spec"]["pluginConfig"], [static_cluster("upstream", 1)], env_keys=env_keys),
                           env={**os.environ, **env})
        assert rc == 0, out[-3000:]
        assert "token-exchange-filter configured" in out
