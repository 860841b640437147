//! YAML text → a tree of nodes that remember where they came from.
//!
//! This is the only module that knows which YAML library cfxm uses. We read the event stream of
//! `saphyr-parser` (the maintained pure-Rust YAML 1.2 parser) and build our own tree, rather than
//! deserializing with serde, because a spec diagnostic needs what serde cannot give: the span of
//! every key and value (not just of the first error), all errors at once, and control over the
//! hostile inputs a checked-in file may contain. Concretely this module:
//!
//! - resolves plain scalars with the YAML 1.2 core schema only: `yes`/`on` stay strings
//!   (YAML 1.1 booleans are a classic foot-gun), `!!str` forces a string;
//! - rejects duplicate keys, pointing at both;
//! - expands anchors, aliases and `<<` merge keys within a node budget, so an alias bomb is an
//!   error rather than an out-of-memory kill;
//! - caps nesting depth and rejects multi-document streams.
//!
//! Spans are byte ranges into the source (saphyr counts characters; we convert).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

/// Most nodes a document may expand to, aliases included.
pub(crate) const MAX_NODES: usize = 100_000;
/// Deepest nesting of mappings and sequences.
pub(crate) const MAX_DEPTH: usize = 64;

/// A byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ByteSpan {
    pub start: usize,
    pub len: usize,
}

impl ByteSpan {
    pub fn end(self) -> usize {
        self.start + self.len
    }
}

impl From<ByteSpan> for miette::SourceSpan {
    fn from(s: ByteSpan) -> Self {
        (s.start, s.len).into()
    }
}

/// A YAML value with its location.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub span: ByteSpan,
    pub value: Value,
}

/// A mapping key: always a string for a spec.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub name: String,
    pub span: ByteSpan,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// What a user would call this value, for "expected X, found Y".
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "nothing (null)".into(),
            Value::Bool(b) => format!("the boolean `{b}`"),
            Value::Int(i) => format!("the integer `{i}`"),
            Value::Float(f) => format!("the number `{f}`"),
            Value::Str(s) => {
                let short: String = s.chars().take(40).collect();
                let ell = if short.len() < s.len() { "…" } else { "" };
                format!("the string `{short}{ell}`")
            }
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

impl Node {
    /// The entry `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&(Key, Node)> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key),
            _ => None,
        }
    }

    /// Converts to JSON for serde; spans are dropped.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Why the text is not a usable YAML document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlError {
    pub message: String,
    pub span: ByteSpan,
    pub label: &'static str,
    pub help: &'static str,
    /// A second location, e.g. the first of two duplicate keys.
    pub related: Option<(ByteSpan, &'static str)>,
}

/// Parses one YAML document. `Ok(None)` means the document is empty (only comments or nothing).
pub(crate) fn parse(src: &str) -> Result<Option<Node>, YamlError> {
    Builder::new(src).run()
}

/// Converts saphyr's character indices to byte offsets.
struct Offsets<'a> {
    src: &'a str,
    /// Byte offset of each character; empty when the source is ASCII.
    table: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(src: &'a str) -> Self {
        let table = if src.is_ascii() {
            Vec::new()
        } else {
            src.char_indices().map(|(b, _)| b).collect()
        };
        Self { src, table }
    }
    fn byte(&self, char_index: usize) -> usize {
        if self.table.is_empty() {
            char_index.min(self.src.len())
        } else {
            self.table
                .get(char_index)
                .copied()
                .unwrap_or(self.src.len())
        }
    }
    fn span(&self, s: Span) -> ByteSpan {
        let start = self.byte(s.start.index());
        let end = self.byte(s.end.index()).max(start);
        ByteSpan {
            start,
            len: end - start,
        }
    }
    /// One character at a scanner error. At the end of input, the last visible character, so
    /// the label lands on a line the user can see.
    fn point(&self, char_index: usize) -> ByteSpan {
        let mut start = self.byte(char_index);
        if self.src[start..].trim().is_empty()
            && let Some((i, _)) = self.src[..start]
                .char_indices()
                .rev()
                .find(|(_, c)| !c.is_whitespace())
        {
            start = i;
        }
        let len = self.src[start..].chars().next().map_or(0, char::len_utf8);
        ByteSpan { start, len }
    }
}

enum Frame {
    Seq {
        start: ByteSpan,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: ByteSpan,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        merges: Vec<Node>,
        key: Option<PendingKey>,
        /// Key name → its span, for duplicate detection without a quadratic scan.
        seen: HashMap<String, ByteSpan>,
    },
}

enum PendingKey {
    Key(Key),
    Merge,
}

struct Builder<'a> {
    src: &'a str,
    offsets: Offsets<'a>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// Nodes created so far, alias copies included; bounded by [`MAX_NODES`].
    nodes: usize,
    root: Option<Node>,
    documents: usize,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            offsets: Offsets::new(src),
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            root: None,
            documents: 0,
        }
    }

    fn run(mut self) -> Result<Option<Node>, YamlError> {
        let mut parser = Parser::new_from_str(self.src);
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| self.scan_error(&e))?;
            let span_b = self.offsets.span(span);
            match event {
                Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
                Event::DocumentStart(_) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(YamlError {
                            message: "a spec is one YAML document, but this file holds several"
                                .into(),
                            span: span_b,
                            label: "a second document starts here",
                            help: "remove the `---` line and everything after it, or split the \
                                   file into one spec per experiment",
                            related: None,
                        });
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let forced_str = tag
                        .as_ref()
                        .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                    let value = if style == ScalarStyle::Plain && !forced_str {
                        resolve_plain(&text)
                    } else {
                        Value::Str(text.into_owned())
                    };
                    let node = self.node(span_b, value)?;
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push(node, style == ScalarStyle::Plain)?;
                }
                Event::Alias(id) => {
                    let Some(target) = self.anchors.get(&id).cloned() else {
                        return Err(YamlError {
                            message: "this alias names an anchor that is not defined above it"
                                .into(),
                            span: span_b,
                            label: "unknown anchor",
                            help: "define the anchor with `&name` before using `*name`",
                            related: None,
                        });
                    };
                    self.count(size_of_tree(&target), span_b)?;
                    // The alias stands where it is used; its content keeps the anchor's spans.
                    let node = Node {
                        span: span_b,
                        value: target.value,
                    };
                    self.push(node, false)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.enter(span_b)?;
                    self.stack.push(Frame::Seq {
                        start: span_b,
                        anchor,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, _) => {
                    self.enter(span_b)?;
                    self.stack.push(Frame::Map {
                        start: span_b,
                        anchor,
                        entries: Vec::new(),
                        merges: Vec::new(),
                        key: None,
                        seen: HashMap::new(),
                    });
                }
                Event::SequenceEnd => {
                    let Some(Frame::Seq {
                        start,
                        anchor,
                        items,
                    }) = self.stack.pop()
                    else {
                        return Err(unbalanced(span_b));
                    };
                    let end = items.last().map_or(span_b.end(), |n| n.span.end());
                    let node = self.node(cover(start, end), Value::Seq(items))?;
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push(node, false)?;
                }
                Event::MappingEnd => {
                    let Some(Frame::Map {
                        start,
                        anchor,
                        mut entries,
                        merges,
                        seen,
                        ..
                    }) = self.stack.pop()
                    else {
                        return Err(unbalanced(span_b));
                    };
                    let end = entries
                        .iter()
                        .map(|(_, n)| n.span.end())
                        .max()
                        .unwrap_or(span_b.end());
                    apply_merges(&mut entries, seen, merges)?;
                    let node = self.node(cover(start, end), Value::Map(entries))?;
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push(node, false)?;
                }
            }
        }
        Ok(self.root)
    }

    fn scan_error(&self, e: &ScanError) -> YamlError {
        YamlError {
            message: format!("invalid YAML: {}", e.info()),
            span: self.offsets.point(e.marker().index()),
            label: "here",
            help: "check the indentation, the `: ` after each key and that quotes and brackets \
                   are closed",
            related: None,
        }
    }

    fn count(&mut self, n: usize, at: ByteSpan) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                message: format!(
                    "the document expands to more than {MAX_NODES} values; a spec is far smaller"
                ),
                span: at,
                label: "expansion passes the limit here",
                help: "anchors and aliases that refer to each other multiply; use them sparingly",
                related: None,
            });
        }
        Ok(())
    }

    fn node(&mut self, span: ByteSpan, value: Value) -> Result<Node, YamlError> {
        self.count(1, span)?;
        Ok(Node { span, value })
    }

    fn enter(&mut self, at: ByteSpan) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError {
                message: format!("the document nests deeper than {MAX_DEPTH} levels"),
                span: at,
                label: "too deep",
                help: "a spec nests a handful of levels; check for runaway brackets",
                related: None,
            });
        }
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn push(&mut self, node: Node, plain_scalar: bool) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = match node.value {
                    // A document holding only `~` or nothing is empty.
                    Value::Null => None,
                    _ => Some(node),
                };
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                merges,
                key,
                seen,
                ..
            }) => match key.take() {
                None => {
                    let name = match node.value {
                        Value::Str(s) => s,
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null if node.span.len > 0 => {
                            self.src[node.span.start..node.span.end()].to_string()
                        }
                        _ => {
                            return Err(YamlError {
                                message: "mapping keys in a spec are plain names".into(),
                                span: node.span,
                                label: "not a plain key",
                                help: "write the key as a word, e.g. `nodes:`",
                                related: None,
                            });
                        }
                    };
                    if plain_scalar && name == "<<" {
                        *key = Some(PendingKey::Merge);
                        return Ok(());
                    }
                    if let Some(first) = seen.get(&name).copied() {
                        return Err(YamlError {
                            message: format!("the key `{name}` appears twice in one mapping"),
                            span: node.span,
                            label: "duplicate key",
                            help: "YAML keeps only one of them; remove or merge the duplicate",
                            related: Some((first, "first defined here")),
                        });
                    }
                    seen.insert(name.clone(), node.span);
                    *key = Some(PendingKey::Key(Key {
                        name,
                        span: node.span,
                    }));
                    Ok(())
                }
                Some(PendingKey::Merge) => {
                    merges.push(node);
                    Ok(())
                }
                Some(PendingKey::Key(k)) => {
                    entries.push((k, node));
                    Ok(())
                }
            },
        }
    }
}

/// Applies `<<: *base` (or a list of bases): keys already present win.
fn apply_merges(
    entries: &mut Vec<(Key, Node)>,
    mut seen: HashMap<String, ByteSpan>,
    merges: Vec<Node>,
) -> Result<(), YamlError> {
    for merge in merges {
        let sources = match merge.value {
            Value::Map(_) => vec![merge],
            Value::Seq(items) => items,
            _ => {
                return Err(YamlError {
                    message: "a `<<` merge key takes a mapping or a list of mappings".into(),
                    span: merge.span,
                    label: "not a mapping",
                    help: "write `<<: *anchor` where `&anchor` names a mapping",
                    related: None,
                });
            }
        };
        for source in sources {
            let Value::Map(more) = source.value else {
                return Err(YamlError {
                    message: "a `<<` merge key takes a mapping or a list of mappings".into(),
                    span: source.span,
                    label: "not a mapping",
                    help: "write `<<: [*a, *b]` where each anchor names a mapping",
                    related: None,
                });
            };
            for (k, v) in more {
                if !seen.contains_key(&k.name) {
                    seen.insert(k.name.clone(), k.span);
                    entries.push((k, v));
                }
            }
        }
    }
    Ok(())
}

fn unbalanced(at: ByteSpan) -> YamlError {
    YamlError {
        message: "invalid YAML: a collection ends that never started".into(),
        span: at,
        label: "here",
        help: "check that brackets and indentation match",
        related: None,
    }
}

fn cover(start: ByteSpan, end: usize) -> ByteSpan {
    ByteSpan {
        start: start.start,
        len: end.max(start.start) - start.start,
    }
}

fn size_of_tree(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .fold(1usize, |acc, n| acc.saturating_add(size_of_tree(n))),
        Value::Map(entries) => entries
            .iter()
            .fold(1usize, |acc, (_, n)| acc.saturating_add(size_of_tree(n))),
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let looks_float = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_float
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        parse(src).unwrap().unwrap()
    }

    #[test]
    fn core_schema_keeps_yaml_1_1_booleans_as_strings() {
        let n = root("a: yes\nb: on\nc: true\nd: '1'\ne: 1\nf: 1.5\ng: ~\nh: !!str 3\n");
        let j = n.to_json();
        assert_eq!(
            j,
            serde_json::json!({"a":"yes","b":"on","c":true,"d":"1","e":1,"f":1.5,"g":null,"h":"3"})
        );
    }

    #[test]
    fn spans_are_bytes_even_after_multibyte_text() {
        let src = "name: é☕\nnodes: 12\n";
        let n = root(src);
        let (k, v) = n.get("nodes").unwrap();
        assert_eq!(&src[k.span.start..k.span.end()], "nodes");
        assert_eq!(&src[v.span.start..v.span.end()], "12");
    }

    #[test]
    fn duplicate_keys_point_at_both() {
        let src = "a: 1\nb: 2\na: 3\n";
        let e = parse(src).unwrap_err();
        assert_eq!(e.span.start, 10);
        assert_eq!(e.related.unwrap().0.start, 0);
    }

    #[test]
    fn merge_keys_and_aliases_expand() {
        let n = root("base: &b {x: 1, y: 2}\nthis:\n  <<: *b\n  y: 3\n");
        assert_eq!(n.to_json()["this"], serde_json::json!({"y": 3, "x": 1}));
    }

    #[test]
    fn alias_bomb_is_an_error_not_an_oom() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("expands to more than"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let src = "[".repeat(10_000);
        let e = parse(&src).unwrap_err();
        assert!(
            e.message.contains("deeper") || e.message.contains("recursion"),
            "{}",
            e.message
        );
    }

    #[test]
    fn empty_documents_are_none() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# only a comment\n").unwrap().is_none());
        assert!(parse("---\n...\n").unwrap().is_none());
    }

    #[test]
    fn second_document_is_an_error() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("several"));
    }
}
