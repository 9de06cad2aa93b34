//! Which field a parse error is in: the JSON path (`routes[0].mint.audience`) at the place in the
//! configuration text where serde_json stopped, found by scanning the text up to there.
//!
//! serde_json reports where an error happened (line and column); the path is rebuilt from the
//! text instead of being tracked while deserializing, because tracking (serde_path_to_error)
//! wraps every field's deserializer and more than doubled the configuration code in the .wasm.
//! Errors found after parsing (`validate`) name their field themselves.

enum Frame {
    /// An object and the key whose value is being read (`None` before the first key).
    Object(Option<String>),
    /// An array and the index of the element being read.
    Array(usize),
}

/// The byte offset of a (1-based) `line` and the byte `column` serde_json reports in it.
pub fn offset(text: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].iter().position(|c| *c == b'\n') {
            Some(p) => start += p + 1,
            None => return text.len(),
        }
    }
    (start + column).min(text.len())
}

/// The path of the value being read at byte `at` of `text` (`"(root)"` outside any field).
pub fn path_at(text: &[u8], at: usize) -> String {
    let text = &text[..at.min(text.len())];
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => stack.push(Frame::Object(None)),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(k)) => *k = None,
                None => {}
            },
            b'"' => {
                let (s, end) = string(text, i + 1);
                // A string where a key is expected is the key (its value follows the ':').
                if let Some(Frame::Object(k @ None)) = stack.last_mut() {
                    *k = Some(s);
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for f in &stack {
        match f {
            Frame::Object(Some(k)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object(None) => {}
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    if path.is_empty() {
        "(root)".to_owned()
    } else {
        path
    }
}

/// The string starting after its opening quote at `i`: its text (simple escapes undone) and the
/// index after its closing quote (or the end of `text`).
fn string(text: &[u8], mut i: usize) -> (String, usize) {
    let mut out = Vec::new();
    while i < text.len() {
        match text[i] {
            b'"' => return (String::from_utf8_lossy(&out).into_owned(), i + 1),
            b'\\' if i + 1 < text.len() => {
                out.push(match text[i + 1] {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    c => c,
                });
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_at_offsets() {
        let t = br#"{"a": 1, "providers": [{"x": "y\"}"}, {"issuer": 5, "m": {"k": [1, 2]}}], "z": {}}"#;
        let at = |needle: &str| std::str::from_utf8(t).unwrap().find(needle).unwrap() + needle.len();
        assert_eq!(path_at(t, 0), "(root)");
        assert_eq!(path_at(t, at(r#"{"a": 1"#)), "a");
        assert_eq!(path_at(t, at(r#""issuer": 5"#)), "providers[1].issuer");
        assert_eq!(path_at(t, at(r#""x": "y\"}""#)), "providers[0].x", "a quote and a brace inside a string are text");
        assert_eq!(path_at(t, at("[1, 2")), "providers[1].m.k[1]");
        assert_eq!(path_at(t, at("[1, 2]}")), "providers[1].m", "after an object closes: the object's own path");
        assert_eq!(path_at(t, at(r#""z""#)), "z");
        assert_eq!(path_at(t, t.len()), "(root)");
    }

    #[test]
    fn line_and_column() {
        let t = b"{\n  \"a\": 1,\n  \"b\": x\n}";
        assert_eq!(offset(t, 1, 0), 0);
        assert_eq!(offset(t, 3, 7), t.iter().position(|c| *c == b'x').unwrap());
        assert_eq!(offset(t, 9, 9), t.len());
    }

    #[test]
    fn serde_json_errors_name_their_field() {
        // Where serde_json stops for each kind of error, in a multi-line text.
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner { n: u32 }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Outer { list: Vec<Inner>, name: Option<String> }
        let cases = [
            ("{\n \"list\": [{\"n\": 1},\n  {\"n\": \"x\"}]}", "list[1].n", "invalid type"),
            ("{\"list\": [{\"n\": 1, \"typo\": 2}]}", "list[0].typo", "unknown field"),
            ("{\"list\": [{}]}", "list[0]", "missing field `n`"),
            ("{\"list\": [], \"name\": 7}", "name", "invalid type"),
            ("{\"list\": [], \"bogus\": {\"a\": 1}}", "bogus", "unknown field"),
            ("{\"name\": \"a\"}", "(root)", "missing field `list`"),
            ("{\"list\": [{\"n\": -1}]}", "list[0].n", "invalid value"),
        ];
        for (text, field, words) in cases {
            let e = serde_json::from_str::<Outer>(text).unwrap_err();
            let got = path_at(text.as_bytes(), offset(text.as_bytes(), e.line(), e.column()));
            assert_eq!(got, field, "{text}: {e}");
            assert!(e.to_string().contains(words), "{text}: {e}");
        }
    }
}
