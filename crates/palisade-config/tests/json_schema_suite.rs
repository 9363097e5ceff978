//! The official JSON-Schema-Test-Suite (draft 2020-12, required tests; see
//! `json-schema-test-suite/README.md`) through the code routes compile their `json_schema`
//! with. Every test must give the suite's answer, except the ones listed in `KNOWN`, which
//! name the reason; a test that starts passing must leave that list.

use std::path::Path;

use palisade_config::compile_schema;
use serde_json::Value;

/// Groups whose schemas reference the suite's remote schemas (served on `localhost:1234` by the
/// suite's own runner): Palisade compiles them with no network resolver, so it refuses them at
/// load, naming the reference, rather than fetch anything. Every other test must pass.
const REMOTE: &[&str] = &[
    "dynamicRef / $ref and $dynamicAnchor are independent of order - $defs first /",
    "dynamicRef / $ref and $dynamicAnchor are independent of order - $ref first /",
    "dynamicRef / $ref to $dynamicRef finds detached $dynamicAnchor /",
    "dynamicRef / strict-tree schema, guards against misspelled properties /",
    "dynamicRef / tests for implementation dynamic anchor and reference link /",
    "vocabulary / ignore unrecognized optional vocabulary /",
    "vocabulary / schema that uses custom metaschema with with no validation vocabulary /",
];

#[test]
fn every_draft_2020_12_test_gets_the_suites_answer() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/json-schema-test-suite/draft2020-12");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the suite is missing from {dir:?}");
    let (mut run, mut wrong) = (0, Vec::new());
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let groups: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for group in &groups {
            let description = group["description"].as_str().unwrap_or_default();
            let compiled = compile_schema(&group["schema"]);
            for test in group["tests"].as_array().unwrap() {
                run += 1;
                let id = format!(
                    "{name} / {description} / {}",
                    test["description"].as_str().unwrap_or_default()
                );
                let expected = test["valid"].as_bool().unwrap();
                let answer = compiled.as_ref().map(|v| v.is_valid(&test["data"]));
                match answer {
                    Ok(valid) if valid == expected => {}
                    Ok(valid) => wrong.push(format!("{id}: said valid={valid}")),
                    Err(e) => wrong.push(format!("{id}: schema refused: {e}")),
                }
            }
        }
    }
    // A remote group counts only when the schema was refused for its remote reference.
    let remote = |w: &String| {
        REMOTE.iter().any(|g| w.starts_with(g))
            && w.contains("schema refused")
            && w.contains("localhost:1234")
    };
    let unexpected: Vec<&str> = wrong
        .iter()
        .filter(|w| !remote(w))
        .map(String::as_str)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} of {run} tests wrong:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    let refused = wrong.len();
    let unseen: Vec<&&str> = REMOTE
        .iter()
        .filter(|g| !wrong.iter().any(|w| w.starts_with(**g)))
        .collect();
    assert!(
        unseen.is_empty(),
        "these groups no longer need a remote schema; remove them from REMOTE: {unseen:?}"
    );
    assert!(run > 1200, "only {run} tests ran");
    println!(
        "{} of {run} tests give the suite's answer; {refused} refused for remote references",
        run - refused
    );
}
