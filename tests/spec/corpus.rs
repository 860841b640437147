//! Every file in `tests/fixtures/bad-specs/` fails validation with exit 1 and a located
//! diagnostic; the exact rendering is snapshotted.

use super::{cfxm, root};

#[test]
fn every_bad_spec_fails_with_a_located_diagnostic() {
    let dir = root().join("tests/fixtures/bad-specs");
    insta::glob!("../fixtures/bad-specs", "*.yaml", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let out = cfxm(&dir, &["validate", "-f", name]);
        assert_eq!(
            out.code,
            Some(1),
            "{name} should fail:\n{}",
            out.transcript()
        );
        assert!(out.stdout.is_empty(), "{name}: diagnostics go to stderr");
        // A located diagnostic names the file with line and column, except for problems of the
        // file as a whole (empty, not text).
        let whole_file = ["empty.yaml", "only-comments.yaml", "binary-garbage.yaml"];
        if !whole_file.contains(&name) {
            assert!(
                out.stderr.contains(&format!("[{name}:")),
                "{name}: no file:line:col in\n{}",
                out.stderr
            );
        }
        assert!(out.stderr.contains("help:"), "{name}: no help line");
        insta::assert_snapshot!(out.transcript());
    });
}

#[test]
fn the_corpus_is_large_enough() {
    let n = std::fs::read_dir(root().join("tests/fixtures/bad-specs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert!(n >= 30, "only {n} bad specs");
}
