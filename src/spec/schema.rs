//! The spec's JSON Schema, and the structural check of a YAML tree against it.
//!
//! The schema is generated from the [`RawSpec`](super::model::RawSpec) types with schemars; the
//! checked-in `schemas/spec.schema.json` is a copy that a test keeps in sync. The same schema
//! drives [`check`], which walks the spanned YAML tree and reports *every* structural problem
//! (unknown keys with a "did you mean", missing keys, wrong types, ranges, patterns) at its exact
//! location. It implements the subset of JSON Schema 2020-12 that schemars emits for our types;
//! a keyword it does not know is ignored, so a new attribute on the types cannot break loading.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value as J};

use super::diagnostic::SpecErrorKind;
use super::model::RawSpec;
use super::yaml::{ByteSpan, Node, Value};

/// The spec's JSON Schema (draft 2020-12).
pub fn json_schema() -> J {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawSpec))
        .expect("a schemars schema is plain JSON");
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            J::String("https://github.com/cfxm/cfxm/schemas/spec.schema.json".into()),
        );
    }
    schema
}

/// The schema as pretty JSON with a trailing newline: what `cfxm schema` prints and what
/// `schemas/spec.schema.json` holds.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("JSON serializes");
    text.push('\n');
    text
}

fn schema() -> &'static J {
    static SCHEMA: OnceLock<J> = OnceLock::new();
    SCHEMA.get_or_init(json_schema)
}

/// One step of a path into the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Where a value sits in the spec, printed as `cloud.aliyun.regions[2].nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SpecPath(pub Vec<Seg>);

impl SpecPath {
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    /// The last key name, e.g. `nodes` for `regions[2].nodes`.
    pub fn leaf(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
    }
}

impl fmt::Display for SpecPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the spec");
        }
        f.write_str("`")?;
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        f.write_str("`")
    }
}

/// A structural problem, before it is attached to its source file.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub kind: SpecErrorKind,
    pub message: String,
    pub span: ByteSpan,
    pub label: String,
    pub help: Option<String>,
}

/// Checks the tree against the spec schema; returns every problem found.
pub(crate) fn check(root: &Node) -> Vec<Problem> {
    let mut checker = Checker {
        root_schema: schema(),
        problems: Vec::new(),
    };
    checker.node(root, schema(), &SpecPath::default(), None);
    checker.problems
}

struct Checker<'s> {
    root_schema: &'s J,
    problems: Vec<Problem>,
}

/// The JSON types a schema allows.
fn types_of(s: &Map<String, J>) -> Vec<&str> {
    match s.get("type") {
        Some(J::String(t)) => vec![t.as_str()],
        Some(J::Array(ts)) => ts.iter().filter_map(J::as_str).collect(),
        _ => Vec::new(),
    }
}

fn node_matches_type(v: &Value, t: &str) -> bool {
    match (t, v) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("integer", Value::Int(_))
        | ("number", Value::Int(_) | Value::Float(_))
        | ("string", Value::Str(_))
        | ("array", Value::Seq(_))
        | ("object", Value::Map(_)) => true,
        ("integer", Value::Float(f)) => f.fract() == 0.0 && f.abs() < 9.0e15,
        _ => false,
    }
}

fn describe_type(t: &str) -> &'static str {
    match t {
        "null" => "nothing",
        "boolean" => "`true` or `false`",
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        "object" => "a mapping",
        _ => "a value",
    }
}

fn join_alternatives(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// First sentence-ish of a description, flattened to one line, as a help text.
fn help_from(desc: Option<&str>, leaf: Option<&str>) -> Option<String> {
    let d = desc?.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(match leaf {
        Some(k) => format!("`{k}`: {d}"),
        None => d,
    })
}

fn regex_for(pattern: &str) -> Option<&'static Regex> {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, &'static Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().ok()?;
    if let Some(r) = map.get(pattern) {
        return Some(r);
    }
    let r: &'static Regex = Box::leak(Box::new(Regex::new(pattern).ok()?));
    map.insert(pattern.to_string(), r);
    Some(r)
}

/// Closest known name to `word`, if close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    known
        .into_iter()
        .map(|k| (strsim::levenshtein(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl<'s> Checker<'s> {
    /// Follows `$ref`s to the schema object that describes a value; keeps the outermost
    /// description (a field's doc comment beats its type's).
    fn resolve(&self, mut s: &'s J) -> (&'s Map<String, J>, Option<&'s str>) {
        let mut desc = None;
        for _ in 0..16 {
            let Some(obj) = s.as_object() else { break };
            if desc.is_none() {
                desc = obj.get("description").and_then(J::as_str);
            }
            match obj.get("$ref").and_then(J::as_str) {
                Some(r) => match r
                    .strip_prefix('#')
                    .and_then(|p| self.root_schema.pointer(p))
                {
                    Some(target) => s = target,
                    None => return (obj, desc),
                },
                None => return (obj, desc),
            }
        }
        static EMPTY: OnceLock<Map<String, J>> = OnceLock::new();
        (
            s.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new)),
            desc,
        )
    }

    fn push(
        &mut self,
        kind: SpecErrorKind,
        message: String,
        span: ByteSpan,
        label: &str,
        help: Option<String>,
    ) {
        self.problems.push(Problem {
            kind,
            message,
            span,
            label: label.to_string(),
            help,
        });
    }

    /// Checks one node. `key_span` is the span of the key that holds it, if any.
    fn node(&mut self, n: &Node, s: &'s J, path: &SpecPath, key_span: Option<ByteSpan>) {
        let (obj, desc) = self.resolve(s);
        let help = help_from(desc, path.leaf());

        for combinator in ["anyOf", "oneOf"] {
            if let Some(J::Array(branches)) = obj.get(combinator) {
                self.alternatives(n, branches, path, key_span, help.clone());
                return;
            }
        }

        let types = types_of(obj);
        if !types.is_empty() && !types.iter().any(|t| node_matches_type(&n.value, t)) {
            let expected: Vec<String> = types
                .iter()
                .filter(|t| **t != "null")
                .map(|t| describe_type(t).to_string())
                .collect();
            let expected = join_alternatives(&expected);
            self.push(
                SpecErrorKind::WrongType,
                format!("{path} should be {expected}, found {}", n.value.describe()),
                n.span,
                &format!("expected {expected}"),
                help,
            );
            return;
        }
        if let Some(allowed) = obj.get("enum").and_then(J::as_array) {
            let json = n.to_json();
            if !allowed.contains(&json) {
                let names: Vec<String> = allowed
                    .iter()
                    .map(|a| format!("`{}`", a.as_str().unwrap_or_default()))
                    .collect();
                self.push(
                    SpecErrorKind::BadValue,
                    format!(
                        "{path} should be one of {}, found {}",
                        join_alternatives(&names),
                        n.value.describe()
                    ),
                    n.span,
                    "not an allowed value",
                    help,
                );
                return;
            }
        }

        match &n.value {
            Value::Map(entries) => self.mapping(n, entries, obj, path, key_span, help),
            Value::Seq(items) => {
                if let Some(min) = obj.get("minItems").and_then(J::as_u64)
                    && (items.len() as u64) < min
                {
                    let message = if min == 1 {
                        format!("{path} must not be empty")
                    } else {
                        format!("{path} needs at least {min} entries, found {}", items.len())
                    };
                    self.push(
                        SpecErrorKind::OutOfRange,
                        message,
                        n.span,
                        "empty",
                        help.clone(),
                    );
                }
                if let Some(item_schema) = obj.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.node(item, item_schema, &path.index(i), None);
                    }
                }
            }
            Value::Str(text) => {
                if let Some(min) = obj.get("minLength").and_then(J::as_u64)
                    && (text.chars().count() as u64) < min
                {
                    self.push(
                        SpecErrorKind::OutOfRange,
                        format!("{path} must not be empty"),
                        n.span,
                        "empty",
                        help.clone(),
                    );
                    return;
                }
                if let Some(max) = obj.get("maxLength").and_then(J::as_u64)
                    && (text.chars().count() as u64) > max
                {
                    self.push(
                        SpecErrorKind::OutOfRange,
                        format!("{path} is longer than {max} characters"),
                        n.span,
                        "too long",
                        help.clone(),
                    );
                    return;
                }
                if let Some(pattern) = obj.get("pattern").and_then(J::as_str)
                    && regex_for(pattern).is_some_and(|r| !r.is_match(text))
                {
                    self.push(
                        SpecErrorKind::BadValue,
                        format!("{path} is not valid: {}", n.value.describe()),
                        n.span,
                        "not of the required form",
                        help,
                    );
                }
            }
            Value::Int(_) | Value::Float(_) => self.range(n, obj, path, help),
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn range(&mut self, n: &Node, obj: &Map<String, J>, path: &SpecPath, help: Option<String>) {
        let Some(x) = number_of(&n.value) else { return };
        let found = fmt_num(x);
        let format_max = match obj.get("format").and_then(J::as_str) {
            Some("uint8") => Some(u8::MAX as f64),
            Some("uint16") => Some(u16::MAX as f64),
            Some("uint32") => Some(u32::MAX as f64),
            Some("int32") => Some(i32::MAX as f64),
            _ => None,
        };
        let bound = |k: &str| obj.get(k).and_then(J::as_f64);
        let violation = [
            (bound("minimum").filter(|b| x < *b), "at least"),
            (
                bound("exclusiveMinimum").filter(|b| x <= *b),
                "greater than",
            ),
            (
                bound("maximum").or(format_max).filter(|b| x > *b),
                "at most",
            ),
            (bound("exclusiveMaximum").filter(|b| x >= *b), "less than"),
        ]
        .into_iter()
        .find_map(|(b, words)| b.map(|b| (words, b)));
        if let Some((words, b)) = violation {
            self.push(
                SpecErrorKind::OutOfRange,
                format!("{path} must be {words} {}, found {found}", fmt_num(b)),
                n.span,
                &format!("must be {words} {}", fmt_num(b)),
                help,
            );
        }
    }

    fn mapping(
        &mut self,
        n: &Node,
        entries: &[(super::yaml::Key, Node)],
        obj: &'s Map<String, J>,
        path: &SpecPath,
        key_span: Option<ByteSpan>,
        help: Option<String>,
    ) {
        let props = obj.get("properties").and_then(J::as_object);
        let additional = obj.get("additionalProperties");
        for (k, v) in entries {
            if let Some(ps) = props.and_then(|p| p.get(&k.name)) {
                self.node(v, ps, &path.key(&k.name), Some(k.span));
                continue;
            }
            match additional {
                Some(J::Bool(false)) => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let help = match did_you_mean(&k.name, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "{} takes {}",
                            path,
                            join_alternatives(
                                &known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>()
                            )
                        ),
                    };
                    let at = if path.0.is_empty() {
                        String::new()
                    } else {
                        format!(" in {path}")
                    };
                    self.push(
                        SpecErrorKind::UnknownKey,
                        format!("unknown key `{}`{at}", k.name),
                        k.span,
                        "unknown key",
                        Some(help),
                    );
                }
                Some(extra @ J::Object(_)) => self.node(v, extra, &path.key(&k.name), Some(k.span)),
                _ => {}
            }
        }
        if let Some(required) = obj.get("required").and_then(J::as_array) {
            for r in required.iter().filter_map(J::as_str) {
                if entries.iter().any(|(k, _)| k.name == r) {
                    continue;
                }
                let prop_desc = props
                    .and_then(|p| p.get(r))
                    .map(|ps| self.resolve(ps).1)
                    .and_then(|d| help_from(d, Some(r)));
                // Point at the key that holds this mapping, or at the mapping's first key.
                let anchor = key_span
                    .or_else(|| entries.first().map(|(k, _)| k.span))
                    .unwrap_or(n.span);
                let in_what = if path.0.is_empty() {
                    String::from("the spec")
                } else {
                    path.to_string()
                };
                self.push(
                    SpecErrorKind::MissingKey,
                    format!("{in_what} is missing the required key `{r}`"),
                    anchor,
                    &format!("needs `{r}`"),
                    prop_desc,
                );
            }
        }
        if let Some(min) = obj.get("minProperties").and_then(J::as_u64)
            && (entries.len() as u64) < min
        {
            let known: Vec<String> = props
                .map(|p| p.keys().map(|k| format!("`{k}`")).collect())
                .unwrap_or_default();
            self.push(
                SpecErrorKind::OutOfRange,
                format!("{path} is empty"),
                key_span.unwrap_or(n.span),
                "empty",
                Some(format!("add one of {}", join_alternatives(&known))).or(help),
            );
        }
    }

    fn alternatives(
        &mut self,
        n: &Node,
        branches: &'s [J],
        path: &SpecPath,
        key_span: Option<ByteSpan>,
        help: Option<String>,
    ) {
        // Branches whose type fits the node; a null branch only fits null.
        let fitting: Vec<&'s J> = branches
            .iter()
            .filter(|b| {
                let (obj, _) = self.resolve(b);
                let types = types_of(obj);
                types.is_empty() || types.iter().any(|t| node_matches_type(&n.value, t))
            })
            .collect();
        if fitting.is_empty() {
            let mut expected: Vec<String> = Vec::new();
            for b in branches {
                for t in types_of(self.resolve(b).0) {
                    let d = describe_type(t).to_string();
                    if t != "null" && !expected.contains(&d) {
                        expected.push(d);
                    }
                }
            }
            let expected = join_alternatives(&expected);
            self.push(
                SpecErrorKind::WrongType,
                format!("{path} should be {expected}, found {}", n.value.describe()),
                n.span,
                &format!("expected {expected}"),
                help,
            );
            return;
        }
        // The first fitting branch that accepts the node wins; else report the first's problems.
        let mut first_problems = None;
        for b in &fitting {
            let mut sub = Checker {
                root_schema: self.root_schema,
                problems: Vec::new(),
            };
            sub.node(n, b, path, key_span);
            if sub.problems.is_empty() {
                return;
            }
            first_problems.get_or_insert(sub.problems);
        }
        self.problems.extend(first_problems.unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml;

    fn problems(src: &str) -> Vec<Problem> {
        check(&yaml::parse(src).unwrap().unwrap())
    }

    const MINIMAL: &str = "name: t\nowner: alice\ncloud:\n  local:\n    regions:\n      - { name: ap-southeast-1, nodes: 4 }\n";

    #[test]
    fn minimal_spec_passes() {
        assert!(problems(MINIMAL).is_empty(), "{:?}", problems(MINIMAL));
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let p = problems(&MINIMAL.replace("nodes: 4", "nods: 4"));
        let unknown = p
            .iter()
            .find(|p| p.kind == SpecErrorKind::UnknownKey)
            .unwrap();
        assert_eq!(unknown.help.as_deref(), Some("did you mean `nodes`?"));
        // The typo also leaves `nodes` missing; both are reported.
        assert!(p.iter().any(|p| p.kind == SpecErrorKind::MissingKey));
    }

    #[test]
    fn ranges_and_types_are_all_reported() {
        let src = MINIMAL.replace("nodes: 4", "nodes: 0")
            + "report: { percentiles: [0, 50, 101] }\nplacement: { backfill: maybe }\n";
        let p = problems(&src);
        let kinds: Vec<_> = p.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                SpecErrorKind::OutOfRange,
                SpecErrorKind::OutOfRange,
                SpecErrorKind::OutOfRange,
                SpecErrorKind::WrongType
            ],
            "{p:#?}"
        );
    }

    #[test]
    fn schema_has_descriptions_and_defaults() {
        let s = json_schema();
        assert_eq!(
            s["$defs"]["RawBlocks"]["properties"]["count"]["default"],
            2000
        );
        assert!(
            s["properties"]["name"]["description"]
                .as_str()
                .unwrap()
                .contains("cfxm-spec")
        );
    }
}
