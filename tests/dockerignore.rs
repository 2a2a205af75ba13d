//! `.dockerignore` against the cases moby/patternmatcher and Go's
//! filepath.Match are tested with (a path is left out when a pattern
//! matches it or one of its parents, the last matching line deciding),
//! and the file format as Docker's ignorefile reads it. No root needed;
//! tests/build.rs checks what a build's layer holds with an ignore file.

use container_lab::engine::build::Dockerignore;

fn excluded(patterns: &[&str], path: &str) -> bool {
    Dockerignore::parse(&patterns.join("\n"))
        .unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
        .excludes(path)
}

#[test]
fn patternmatcher_s_single_pattern_cases() {
    // (pattern, path, left out)
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**", "dir/file", true),
        ("**/**", "dir/file", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/dir2/file", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a\\\\", "a\\", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "ab", false),
        ("a*/b", "abc/b", true),
        ("a*/b", "a/c/b", false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true),
        ("a*b?c*x", "abxbbxdbxebxczzy", false),
        ("ab[^e-g]", "abc", true),
        ("a?b", "a☺b", true),
        ("a???b", "a☺b", false),
        ("a?b", "a/b", false),
        ("[\\]a]", "]", true),
        ("*x", "xxx", true),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(p, path, want)| excluded(&[p], path) != *want)
        .map(|(p, path, want)| format!("{p:?} on {path:?}: want {want}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn exceptions_and_the_last_match_winning() {
    assert!(!excluded(
        &["**", "!util/docker/web"],
        "util/docker/web/foo"
    ));
    assert!(excluded(
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo"
    ));
    assert!(!excluded(
        &["**", "!dist/*.whl"],
        "dist/a-1.0-py3-none-any.whl"
    ));
    assert!(excluded(&["!fileutils.go", "*.go"], "fileutils.go"));
    assert!(!excluded(&["*.go", "!fileutils.go"], "fileutils.go"));
    for folder in ["docs", "docs/", "docs/*"] {
        assert!(!excluded(&[folder, "!docs/README.md"], "docs/README.md"));
        assert!(excluded(&[folder, "!docs/README.md"], "docs/other.md"));
    }
    assert!(
        !excluded(&["*.go"], "."),
        "the context itself is never left out"
    );
    assert!(!excluded(&[], "any/path"));
}

#[test]
fn the_file_format() {
    let d = Dockerignore::parse(
        "\u{feff}# a comment\n  # not a comment: a pattern with a leading space\n\n/abs/../rooted\n  !  spaced  \n./here/\n",
    )
    .unwrap();
    assert_eq!(
        d.patterns(),
        [
            "# not a comment: a pattern with a leading space",
            "rooted",
            "!spaced",
            "here"
        ]
    );
    assert!(d.excludes("rooted/x") && d.excludes("here"));
    assert!(!d.excludes("# a comment"));
    assert_eq!(
        Dockerignore::parse("ok\n!\n").unwrap_err(),
        "illegal exclusion pattern: \"!\""
    );
}
