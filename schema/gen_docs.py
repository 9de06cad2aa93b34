#!/usr/bin/env python3
"""Writes docs/configuration.md from schema/plugin-config.schema.json (the one source of the
configuration's fields). `--check` fails if the committed file differs (the e2e suite runs it)."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schema" / "plugin-config.schema.json").read_text())


def kind(n: dict) -> str:
    if "enum" in n:
        return " \\| ".join(f"`{json.dumps(e)}`" for e in n["enum"])
    if "oneOf" in n:
        return " or ".join(kind(x) for x in n["oneOf"])
    t = n.get("type", "")
    if isinstance(t, list):
        return " \\| ".join(t)
    if t == "array":
        return f"array of {kind(n.get('items', {}))}"
    return t


def bounds(n: dict) -> str:
    parts = []
    for k, label in (("minimum", "≥"), ("maximum", "≤"), ("minItems", "items ≥"), ("maxItems", "items ≤"), ("minLength", "length ≥"),
                     ("maxProperties", "members ≤")):
        if k in n:
            parts.append(f"{label} {n[k]}")
    if "pattern" in n:
        parts.append(f"pattern `{n['pattern']}`")
    return ", ".join(parts)


def rows(n: dict, path: str, required: bool, out: list):
    default = json.dumps(n["default"], ensure_ascii=False) if "default" in n else ("required" if required else "")
    desc = n.get("description", "").replace("|", "\\|").replace("\n", " ")
    if path:
        out.append(f"| `{path}` | {kind(n)} | {default.replace('|', chr(92) + '|')} | {bounds(n)} | {desc} |")
    req = set(n.get("required", []))
    for k, v in n.get("properties", {}).items():
        rows(v, f"{path}.{k}" if path else k, k in req, out)
    if "items" in n and "properties" in n["items"]:
        rows_items = n["items"]
        for k, v in rows_items.get("properties", {}).items():
            rows(v, f"{path}[].{k}", k in set(rows_items.get("required", [])), out)


def render() -> str:
    out = ["# Plugin configuration reference", "",
           "Generated from [`schema/plugin-config.schema.json`](../schema/plugin-config.schema.json) by "
           "`schema/gen_docs.py` (do not edit by hand; CI checks it). The JSON Schema (draft 2020-12) is the "
           "one list of fields: a test makes the filter's parser and the schema accept exactly the same ones, "
           "and every example configuration in the repository is validated against it. Unknown fields are "
           "errors; a refused configuration names the field in Envoy's log.", "",
           SCHEMA["description"], "",
           "| field | type | default | bounds | meaning |", "|---|---|---|---|---|"]
    rows(SCHEMA, "", False, out)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    target = ROOT / "docs" / "configuration.md"
    text = render()
    if "--check" in sys.argv:
        if not target.exists() or target.read_text() != text:
            sys.exit("docs/configuration.md is out of date: run schema/gen_docs.py")
    else:
        target.parent.mkdir(exist_ok=True)
        target.write_text(text)
