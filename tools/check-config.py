#!/usr/bin/env python3
"""Checks a plugin configuration alone, with the filter's real parser inside a real Envoy
(`envoy --mode validate`, which runs the plugin's configure step): prints OK and the filter's own
summary line, or the error naming the field. Takes the plugin JSON, a YAML file of it, or an
Istio WasmPlugin manifest (its `spec.pluginConfig`, every WasmPlugin in the file).

    .venv/bin/python tools/check-config.py envoy/plugin-config.phantom.json
    .venv/bin/python tools/check-config.py envoy/istio-sidecar.yaml

Environment variables the configuration names (`private_jwk_env`) are read from your shell, as
Envoy would read them from its own (`host_env_keys`). Needs ./wasm-build.sh and tests/bootstrap.sh.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import bootstrap, static_cluster, validate  # noqa: E402


def configs(path: Path) -> list[tuple[str, dict]]:
    text = path.read_text()
    if path.suffix == ".json":
        return [(path.name, json.loads(text))]
    import yaml
    docs = [d for d in yaml.safe_load_all(text) if d]
    plugins = [(f"{path.name}: WasmPlugin {d.get('metadata', {}).get('name', '?')}", d["spec"].get("pluginConfig", {}))
               for d in docs if d.get("kind") == "WasmPlugin"]
    return plugins or [(path.name, docs[0])]


def env_names(v) -> list[str]:
    if isinstance(v, dict):
        return [n for k, x in v.items() for n in ([x] if k.endswith("_env") and isinstance(x, str) else env_names(x))]
    if isinstance(v, list):
        return [n for x in v for n in env_names(x)]
    return []


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    failed = 0
    for name, conf in configs(Path(sys.argv[1])):
        keys = env_names(conf)
        rc, out = validate(bootstrap(conf, [static_cluster("upstream", 1)], env_keys=keys))
        lines = [l for l in out.splitlines() if "token-exchange-filter" in l or "invalid plugin configuration" in l]
        ok = rc == 0 and any("token-exchange-filter configured" in l for l in lines)
        msg = next((re.sub(r"^.*?\] ", "", l) for l in lines if "configured" in l or "invalid plugin configuration" in l), out.strip()[-500:])
        print(f"{'OK' if ok else 'REFUSED'}  {name}: {msg.split('wasm log token-exchange-filter token-exchange-filter: ')[-1]}")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
