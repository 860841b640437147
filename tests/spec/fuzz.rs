//! Mutated specs never crash `cfxm validate`: the outcome is always exit 0 or 1 with output.

use proptest::prelude::*;

use super::{cfxm, root};

/// Bytes that make YAML interesting: structure, quoting, anchors, multi-byte text.
const SPICE: &[&str] = &[
    ":",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: ",
    "!!str ",
    "'",
    "\"",
    "\n",
    "  ",
    "\t",
    "#",
    "---\n",
    "~",
    "0",
    "-1",
    "1e999",
    ".inf",
    "é",
    "☕",
    "\u{0}",
    "\\",
    "|\n",
    ">\n",
    "yes",
    "null",
    "99999999999999999999",
];

fn mutate(base: &str, ops: &[(usize, usize, usize)]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for &(kind, pos, pick) in ops {
        let at = pos % (s.len() + 1);
        match kind % 3 {
            0 => {
                let ins: Vec<char> = SPICE[pick % SPICE.len()].chars().collect();
                s.splice(at..at, ins);
            }
            1 if at < s.len() => {
                s.remove(at);
            }
            _ => {
                // Duplicate a slice: repeats keys, lines and brackets.
                let end = (at + pick % 40).min(s.len());
                let dup: Vec<char> = s[at..end].to_vec();
                s.splice(at..at, dup);
            }
        }
    }
    s.into_iter().collect()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(name)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The library path the CLI uses, many cases: never panics, always errors or a spec.
    #[test]
    fn load_never_panics(ops in prop::collection::vec((0usize..3, 0usize..4000, 0usize..64), 1..12),
                         which in 0usize..4) {
        let base = example(["local.yaml", "aliyun-10k.yaml", "aws-legacy.yaml", "aliyun-small.yaml"][which]);
        let text = mutate(&base, &ops);
        match cfxm::spec::load_str(&text, "m.yaml", std::path::Path::new("examples/m.yaml")) {
            Ok(spec) => prop_assert!(spec.nodes() > 0),
            Err(errs) => {
                prop_assert!(!errs.errors.is_empty());
                for e in &errs.errors {
                    // Rendering must not panic either, and must name a location when it has one.
                    let text = cfxm::cli::render_diagnostic(e);
                    prop_assert!(!text.is_empty());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The built binary on mutated files: exit 0 or 1, never a crash.
    #[test]
    fn validate_exits_0_or_1(ops in prop::collection::vec((0usize..3, 0usize..3000, 0usize..64), 1..8)) {
        let text = mutate(&example("local.yaml"), &ops);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), text).unwrap();
        let out = cfxm(dir.path(), &["validate", "-f", "m.yaml"]);
        prop_assert!(matches!(out.code, Some(0) | Some(1)), "{}", out.transcript());
        prop_assert!(!(out.stdout.is_empty() && out.stderr.is_empty()));
    }
}
