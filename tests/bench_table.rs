//! The README's benchmark table is scripts/bench.sh's own output: the
//! text between its bench markers is `book/src/measurements/bench.md`,
//! the file the book includes, byte for byte.

use std::fs;
use std::path::PathBuf;

#[test]
fn the_readmes_benchmark_table_is_the_benchmarks_output() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(repo.join("README.md")).unwrap();
    let table = fs::read_to_string(repo.join("book/src/measurements/bench.md")).unwrap();
    let begin = "<!-- bench:begin (scripts/bench.sh writes this) -->\n";
    let end = "<!-- bench:end -->";
    let start = readme
        .find(begin)
        .expect("README.md has no bench:begin marker")
        + begin.len();
    let stop = readme.find(end).expect("README.md has no bench:end marker");
    assert_eq!(
        &readme[start..stop],
        table,
        "run scripts/bench.sh: README.md's table is not bench.md"
    );
    assert!(
        table.contains("relative to crun"),
        "bench.md is not the benchmark's table"
    );
    for page in ["mini-docker.md", "ch11-runtime.md"] {
        let text = fs::read_to_string(repo.join("book/src").join(page)).unwrap();
        assert!(
            text.contains("{{#include measurements/bench.md}}"),
            "{page} must include the benchmark's output"
        );
    }
}
