//! The checked-in C header is exactly what cbindgen generates from src/ffi (build.rs writes it to
//! OUT_DIR), declares every exported function, and documents ownership and threading for each.
//! `NORMAN_UPDATE_HEADER=1 cargo test --test header` refreshes the checked-in copy.

use std::path::Path;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/norman.h"));

fn checked_in_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include/norman.h")
}

#[test]
fn checked_in_header_matches_the_generated_one() {
    let path = checked_in_path();
    if std::env::var_os("NORMAN_UPDATE_HEADER").is_some() {
        std::fs::write(&path, GENERATED).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == GENERATED,
        "include/norman.h differs from the header cbindgen generates from src/ffi; \
         run `NORMAN_UPDATE_HEADER=1 cargo test --test header` and commit the result"
    );
}

/// The .rs files under `dir`, subfolders included (src/ffi/msg/...).
fn rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Names of the `#[no_mangle]` functions in src/ffi.
fn exported_functions() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi"), &mut files);
    let mut names = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut exported = false;
        for line in text.lines() {
            let line = line.trim();
            if line == "#[no_mangle]" {
                exported = true;
            } else if exported && line.contains("extern \"C\" fn ") {
                let rest = line.split("extern \"C\" fn ").nth(1).unwrap();
                names.push(rest.split('(').next().unwrap().to_owned());
                exported = false;
            }
        }
    }
    names.sort();
    assert!(names.len() > 40, "found only {} exports", names.len());
    names
}

#[test]
fn every_export_is_declared_and_documented() {
    for name in exported_functions() {
        assert!(name.starts_with("norman_"), "{name} lacks the norman_ prefix");
        let needle = format!("{name}(");
        let at = GENERATED
            .match_indices(&needle)
            .map(|(i, _)| i)
            .find(|&i| i > 0 && matches!(GENERATED.as_bytes()[i - 1], b' ' | b'*'))
            .unwrap_or_else(|| panic!("{name} is not declared in norman.h"));
        // The doc comment right above the declaration.
        let before = &GENERATED[..at];
        let doc_start = before.rfind("/**").unwrap_or_else(|| panic!("{name} has no doc comment"));
        let doc = &before[doc_start..];
        assert!(doc.contains("*/"), "{name}: doc comment not directly above");
        assert!(doc.contains("Ownership"), "{name}: doc does not state ownership");
        assert!(doc.contains("Threads"), "{name}: doc does not state threading");
    }
}

#[test]
fn the_header_defines_only_norman_names() {
    for line in GENERATED.lines().filter(|l| l.starts_with("#define ")) {
        let name = line.split_whitespace().nth(1).unwrap();
        assert!(name.starts_with("NORMAN_"), "stray macro {name}");
    }
    for comment in GENERATED.split("/*").skip(1) {
        let body = comment.split("*/").next().unwrap_or("");
        assert!(!body.contains("/*"), "a doc comment contains `/*`, which breaks C: {body}");
    }
    for line in GENERATED.lines().filter(|l| l.starts_with("typedef ")) {
        assert!(line.contains("norman_"), "stray type: {line}");
    }
}
