//! The shipped JSON Schema (`schema/plugin-config.schema.json`) and the configuration types
//! accept exactly the same fields: at every object the schema describes, a probe field makes
//! the real parser list the fields it accepts there (serde's `deny_unknown_fields` error), and
//! that list must equal the schema's `properties`. A field added to either side alone fails.

use crate::config;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const SCHEMA: &str = include_str!("../../schema/plugin-config.schema.json");

/// A JSON path: `Some(name)` for a member, `None` for an array item.
type Path = Vec<Option<String>>;

/// Every object node with `properties`, with the JSON path to it.
fn objects<'a>(node: &'a Value, path: Path, out: &mut Vec<(Path, &'a Map<String, Value>)>) {
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        out.push((path.clone(), props));
        for (k, v) in props {
            let mut p = path.clone();
            p.push(Some(k.clone()));
            objects(v, p, out);
        }
    }
    if let Some(items) = node.get("items") {
        let mut p = path.clone();
        p.push(None);
        objects(items, p, out);
    }
}

/// A configuration whose object at `path` is `{"__probe__": 1}`, built from the outside in.
fn probe(path: &[Option<String>]) -> Value {
    let mut v = json!({"__probe__": 1});
    for step in path.iter().rev() {
        v = match step {
            Some(name) => {
                let mut m = Map::new();
                m.insert(name.clone(), v);
                Value::Object(m)
            }
            None => Value::Array(vec![v]),
        };
    }
    v
}

/// The fields serde says it expects, from `unknown field `__probe__`, expected one of `a`, `b``.
fn accepted(message: &str) -> BTreeSet<String> {
    let rest = message.split("expected").nth(1).unwrap_or_else(|| panic!("no field list in: {message}"));
    let rest = rest.split(" at line").next().unwrap();
    rest.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn the_schema_and_the_parser_accept_the_same_fields() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let mut nodes = Vec::new();
    objects(&schema, Vec::new(), &mut nodes);
    assert!(nodes.len() >= 20, "only {} objects in the schema", nodes.len());
    for (path, props) in nodes {
        let conf = probe(&path);
        let err = match config::parse(conf.to_string().as_bytes()) {
            Err(e) => e,
            Ok(_) => panic!("{conf}: a probe field was accepted"),
        };
        assert!(err.message.contains("unknown field `__probe__`"), "{conf}: {err}");
        let schema_fields: BTreeSet<String> = props.keys().cloned().collect();
        assert_eq!(accepted(&err.message), schema_fields, "at {conf}: the parser's fields (left) vs the schema's (right)");
    }
}

#[test]
fn every_schema_object_refuses_unknown_fields_and_every_field_has_a_description() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let mut nodes = Vec::new();
    objects(&schema, Vec::new(), &mut nodes);
    fn check(v: &Value, at: &str) {
        if v.get("properties").is_some() {
            assert_eq!(v.get("additionalProperties"), Some(&Value::Bool(false)), "{at}: unknown fields are errors");
        }
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let d = p.get("description").and_then(Value::as_str).unwrap_or("");
                assert!(!d.is_empty(), "{at}.{k} has no description");
                check(p, &format!("{at}.{k}"));
            }
        }
        if let Some(items) = v.get("items") {
            check(items, &format!("{at}[]"));
        }
    }
    check(&schema, "(root)");
}
