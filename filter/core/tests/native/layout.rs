//! The crate wall and the module tree: the core has no proxy-wasm in its
//! dependency tree, the module crate is glue over the core's public API, and
//! each top-level module of the core uses only modules listed before it in
//! `lib.rs` (no import cycles; one request's walk goes one way).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn sources(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            sources(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The top-level modules a module's files name as `crate::<module>`.
fn uses(src: &Path, module: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(&src.join(module), &mut files);
    sources(&src.join(format!("{module}.rs")), &mut files);
    assert!(!files.is_empty(), "no source for module {module}");
    let mut out = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn modules_use_only_those_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    // the order of the module list in lib.rs's doc comment
    let order: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! - `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    assert!(order.len() >= 9, "module list in lib.rs: {order:?}");
    for (i, module) in order.iter().enumerate() {
        for used in uses(&src, module) {
            let before = order[..i].contains(&used);
            assert!(
                before,
                "{module} uses {used}, which is not listed before it"
            );
        }
    }
    let declared: Vec<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect();
    let mut sorted_order = order.clone();
    sorted_order.sort();
    let mut sorted_declared = declared.clone();
    sorted_declared.sort();
    assert_eq!(
        sorted_order, sorted_declared,
        "lib.rs lists every module it declares"
    );
}

#[test]
fn the_core_does_not_depend_on_proxy_wasm() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.starts_with("sticky-split-core "), "{tree}");
    assert!(tree.lines().count() > 5, "{tree}");
    assert!(
        !tree.lines().any(|l| l.starts_with("proxy-wasm ")),
        "the core depends on proxy-wasm:\n{tree}"
    );
}

#[test]
fn the_module_crate_is_glue_over_the_core() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        // the glue reaches the core only through its public API, and every
        // host call goes through host.rs
        let calls_host = text.contains("hostcalls::");
        let is_host = file.ends_with("host.rs");
        assert!(
            !calls_host || is_host,
            "{} calls the host outside host.rs",
            file.display()
        );
    }
}
