//! Replays every committed fuzz input (seeds and crash regressions) through
//! the fuzz harnesses, so `cargo test` keeps what fuzzing found fixed.

// A test fails by panicking; the filter's own lints are for the module.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;

use sticky_split_harness as fuzzing;

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        // only what is committed: seeds and crash reproducers (a local fuzz
        // run adds and removes other files while this runs)
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("seed-") || name.starts_with("regress-")) {
            continue;
        }
        harness(&fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn committed_fuzz_inputs_do_not_panic() {
    let (parsed, total) = fuzzing::fixed_configs();
    assert_eq!(parsed, total, "a fixed fuzzing config is refused");
    assert!(replay("config", fuzzing::config) >= 4);
    assert!(replay("cookie", fuzzing::cookie) >= 3);
    assert!(replay("request", fuzzing::request) >= 7);
    assert!(replay("board", fuzzing::board) >= 3);
}
