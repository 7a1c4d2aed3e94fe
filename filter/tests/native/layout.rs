//! The module tree has no import cycles: each top-level module of the filter
//! uses only modules listed before it in `lib.rs` (fuzzing and glue, which
//! use everything, come last).

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
    for last in ["glue", "fuzzing"] {
        for used in uses(&src, last) {
            assert!(order.contains(&used), "{last} uses unlisted {used}");
        }
    }
}
