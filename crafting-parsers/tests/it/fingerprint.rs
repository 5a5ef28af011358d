//! Findings of different jobs compare: paths and fingerprints do not depend
//! on where the worktree was.

use crate::common::{ctx, fixture, parse};

#[test]
fn the_same_clippy_warning_from_two_worktrees_has_one_fingerprint() {
    // The same repository checked out at /tmp/wt-a/repo and /tmp/wt-b/repo,
    // clippy run in the `app` member of each.
    let a = parse(&ctx("rust", "/tmp/wt-a/repo", "app"), &fixture("clippy/worktree_a.log"));
    let b = parse(&ctx("rust", "/tmp/wt-b/repo", "app"), &fixture("clippy/worktree_b.log"));
    assert_eq!(a.len(), 7);
    let key = |f: &crafting_parsers::Finding| {
        (f.file.clone(), f.line, f.code.clone(), f.fingerprint.clone())
    };
    assert_eq!(a.iter().map(key).collect::<Vec<_>>(), b.iter().map(key).collect::<Vec<_>>());
    // And the logs really differed in their absolute paths.
    let raw_a = String::from_utf8(fixture("clippy/worktree_a.log")).expect("utf-8");
    assert!(raw_a.contains("/tmp/wt-a/repo/") && !raw_a.contains("/tmp/wt-b/"));
    let ret = a.iter().find(|f| f.code == "clippy::needless_return").expect("lint");
    assert_eq!(
        ret.fingerprint,
        crafting_parsers::fingerprint(
            crafting_parsers::Kind::Lint,
            Some("app/src/main.rs"),
            Some(15),
            "clippy::needless_return"
        )
    );
}
