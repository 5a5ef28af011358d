//! Tests of the diff reader, checker, planner, writer and renderer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use std::fs;

const MAX: usize = DEFAULT_MAX_DIFF_BYTES;

/// A temporary worktree holding `files`.
fn worktree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, content) in files {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        fs::write(full, content).expect("write");
    }
    dir
}

/// Every entry under `root`: files with their bytes, links with their
/// targets, folders as `<dir>`.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let key = path.strip_prefix(root).expect("inside").to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&path).expect("meta");
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("link");
                out.insert(key, format!("-> {}", target.display()).into_bytes());
            } else if meta.is_dir() {
                out.insert(key, b"<dir>".to_vec());
                stack.push(path);
            } else {
                out.insert(key, fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn read(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path)).expect("read back")
}

/// Applies `diff` and expects it refused with nothing in the worktree changed.
fn refused(dir: &Path, diff: &str) -> DiffError {
    let before = snapshot(dir);
    let err = apply(diff, dir, MAX).expect_err("the diff must be refused");
    assert_eq!(snapshot(dir), before, "the worktree changed although {err} was refused");
    err
}

/// A one-hunk diff of `path` replacing `old` by `new` (each one line).
fn edit_of(path: &str, old: &str, new: &str) -> String {
    format!(
        "diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"
    )
}

/// Whether the git command line is installed.
fn have_git() -> bool {
    Command::new("git").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Runs `git apply --check` for `diff` in a fresh repository holding `files`.
fn git_apply_check(files: &[(&str, &str)], diff: &str) -> Result<(), String> {
    let dir = worktree(files);
    let git = |args: &[&str]| {
        Command::new("git").args(args).current_dir(dir.path()).output().expect("run git")
    };
    assert!(git(&["init", "-q"]).status.success());
    let patch = dir.path().join("change.patch");
    fs::write(&patch, diff).expect("write patch");
    let out = git(&["apply", "--check", "change.patch"]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

// ---------------------------------------------------------------------------
// Reading

#[test]
fn size_is_checked_before_any_parsing() {
    let huge = format!("--- a/x\n+++ b/x\n@@ -1 +1 @@\n{}", "+y\n".repeat(50 * 1024 * 1024 / 3));
    let dir = worktree(&[("x", "a\n")]);
    let started = Instant::now();
    let err = parse(&huge, MAX).expect_err("too large");
    assert!(started.elapsed() < Duration::from_millis(50), "took {:?}", started.elapsed());
    assert!(matches!(err, DiffError::TooLarge { limit: MAX, .. }));
    assert_eq!(
        err.to_string(),
        format!("the diff is {} bytes, over the limit of 1048576 bytes", huge.len())
    );
    let err = refused(dir.path(), &huge);
    assert!(matches!(err, DiffError::TooLarge { .. }));
}

#[test]
fn text_without_file_sections_holds_no_changes() {
    for text in ["", "I could not find anything to change.\n", "```diff\n```\n"] {
        let err = parse(text, MAX).expect_err("no diff");
        assert!(matches!(err, DiffError::NoChanges), "{text:?}: {err}");
        assert_eq!(err.to_string(), "no file changes found in the diff");
    }
}

#[test]
fn hunk_before_any_file_header_is_malformed() {
    let err = parse("intro\n@@ -1 +1 @@\n-a\n+b\n", MAX).expect_err("malformed");
    assert_eq!(err.to_string(), "line 2 of the diff: hunk before any file header");
}

#[test]
fn git_diff_gives_names_modes_and_hunk_lines() {
    let text = "\
diff --git a/src/lib.rs b/src/lib.rs
index 3b18e51..a3c2f4e 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,3 @@ fn main() {
 one
-two
+deux
 three
diff --git a/new.txt b/new.txt
new file mode 100644
index 0000000..e69de29
";
    let diff = parse(text, MAX).expect("parse");
    assert_eq!(diff.files.len(), 2);
    let first = &diff.files[0];
    assert_eq!(first.old_path.as_deref(), Some("src/lib.rs"));
    assert_eq!(first.new_path.as_deref(), Some("src/lib.rs"));
    assert_eq!((first.old_mode, first.new_mode), (Some(0o100644), Some(0o100644)));
    assert_eq!(first.line, 1);
    let hunk = &first.hunks[0];
    assert_eq!((hunk.old_start, hunk.line), (Some(1), 5));
    let kinds: Vec<LineKind> = hunk.lines.iter().map(|l| l.kind).collect();
    use LineKind::*;
    assert_eq!(kinds, [Context, Removed, Added, Context]);
    assert_eq!(hunk.lines[2].text, "deux");
    let second = &diff.files[1];
    assert_eq!((second.old_path.as_deref(), second.new_path.as_deref()), (None, Some("new.txt")));
    assert!(second.hunks.is_empty());
    assert_eq!(touched(&diff), ["src/lib.rs", "new.txt"]);
}

#[test]
fn quoted_names_and_tab_suffixes_are_read() {
    let text = "\
diff --git \"a/caf\\303\\251 \\\"x\\\".py\" \"b/caf\\303\\251 \\\"x\\\".py\"
--- \"a/caf\\303\\251 \\\"x\\\".py\"
+++ \"b/caf\\303\\251 \\\"x\\\".py\"
@@ -1 +1 @@
-a
+b
--- a/with space.txt\t2024-01-01 10:00:00.000000000 +0000
+++ b/with space.txt\t2024-01-01 10:00:01.000000000 +0000
@@ -1 +1 @@
-a
+b
";
    let diff = parse(text, MAX).expect("parse");
    assert_eq!(touched(&diff), ["café \"x\".py", "with space.txt"]);
}

#[test]
fn names_without_prefixes_are_kept() {
    let diff = parse("--- src/a.py\n+++ src/a.py\n@@ -1 +1 @@\n-a\n+b\n", MAX).expect("parse");
    assert_eq!(touched(&diff), ["src/a.py"]);
    // A folder really named `a` with no prefixes: both names agree, kept whole.
    let diff = parse("--- a/x.py\n+++ a/x.py\n@@ -1 +1 @@\n-a\n+b\n", MAX).expect("parse");
    assert_eq!(touched(&diff), ["a/x.py"]);
    // One prefix given, the other left out.
    let diff = parse("--- a/x.py\n+++ x.py\n@@ -1 +1 @@\n-a\n+b\n", MAX).expect("parse");
    assert_eq!(touched(&diff), ["x.py"]);
}

#[test]
fn wrong_counts_fall_back_to_reading_up_to_the_next_header() {
    // Counts too large (runs into the next file) and too small (stops early).
    let text = "\
--- a/one.txt
+++ b/one.txt
@@ -1,9 +1,9 @@
 a
-b
+B
--- a/two.txt
+++ b/two.txt
@@ -1,1 +1,1 @@
 a
-b
+B
 c
";
    let diff = parse(text, MAX).expect("parse");
    assert_eq!(diff.files.len(), 2);
    assert_eq!(diff.files[0].hunks[0].lines.len(), 3);
    assert_eq!(diff.files[1].hunks[0].lines.len(), 4);
}

#[test]
fn no_newline_marker_binds_to_the_line_before() {
    let text = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n";
    let lines = &parse(text, MAX).expect("parse").files[0].hunks[0].lines;
    assert!(!lines[0].newline);
    assert!(lines[1].newline);
    let bad = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n\\ No newline at end of file\n b\n";
    let err = parse(bad, MAX).expect_err("line after the end");
    assert!(err.to_string().contains("follows the last line"), "{err}");
}

#[test]
fn a_format_patch_mail_signature_is_not_a_removed_line() {
    let text = "\
From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] fix

---
 x | 2 +-
 1 file changed

diff --git a/x b/x
--- a/x
+++ b/x
@@ -1 +1 @@
-a
+b
-- 
2.47.3

";
    let diff = parse(text, MAX).expect("parse");
    assert_eq!(diff.files[0].hunks[0].lines.len(), 2);
}

#[test]
fn garbage_and_cut_off_diffs_never_panic() {
    let junk = [
        "@@",
        "@@ -x +y @@\n",
        "--- \n+++ \n@@\n",
        "diff --git\n",
        "diff --git \"a/x\n",
        "diff --git a/x b/x\nindex 1..2 9999999999\n",
        "--- \"a/\\777\"\n+++ b/x\n@@ -1 +1 @@\n-a\n",
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n\\ No newline at end of file\n",
        "--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+a\n",
        "\u{0}\u{feff}\r\n\r\n",
    ];
    let dir = worktree(&[("x", "a\n")]);
    for text in junk {
        let _ = apply(text, dir.path(), MAX);
    }
    let valid = unified("x", "a\nb\nc\n", "a\nB\nc\nd") + &unified_change("y/z", None, Some("é\n"));
    for end in (0..valid.len()).filter(|&i| valid.is_char_boundary(i)) {
        let _ = parse(&valid[..end], MAX).map(|d| plan(&d, dir.path()));
    }
    assert_eq!(read(dir.path(), "x"), "a\n");
}

// ---------------------------------------------------------------------------
// Applying

#[test]
fn sloppy_model_diff_applies() {
    let dir =
        worktree(&[("app/main.py", "import os\n\n\ndef main():\n    print('hi')\n    return 1\n")]);
    let reply = "\
Here is the fix:

```diff
--- app/main.py
+++ app/main.py
@@ -3,4 +3,99 @@
 
 def main():
-    print('hi')
+    print('hello')
     return 1

```
That should do it.
";
    let changes = apply(reply, dir.path(), MAX).expect("applies");
    assert_eq!(changes.len(), 1);
    assert_eq!(
        read(dir.path(), "app/main.py"),
        "import os\n\n\ndef main():\n    print('hello')\n    return 1\n"
    );
}

#[test]
fn prose_after_a_correctly_counted_hunk_is_not_read_as_lines() {
    let dir = worktree(&[("f", "a\nb\n")]);
    let reply = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\n- Changed b to c.\n";
    apply(reply, dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "f"), "a\nc\n");
}

#[test]
fn hunk_found_away_from_its_header_line() {
    let old = "x\ny\nz\na\nb\nc\nd\ne\n";
    let dir = worktree(&[("f", old)]);
    // The header says line 1; the context sits at line 4.
    let text = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n";
    apply(text, dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "f"), "x\ny\nz\na\nB\nc\nd\ne\n");
}

#[test]
fn the_match_nearest_the_header_wins() {
    let dir = worktree(&[("f", "k\nv\nk\nv\nk\nv\nk\n")]);
    let text = "--- a/f\n+++ b/f\n@@ -3,3 +3,3 @@\n k\n-v\n+V\n k\n";
    apply(text, dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "f"), "k\nv\nk\nV\nk\nv\nk\n");
    // Without a line number the place is ambiguous.
    let text = "--- a/f\n+++ b/f\n@@ @@\n k\n-v\n+V\n k\n";
    let err = refused(dir.path(), text);
    assert!(err.to_string().contains("matches at 2 places"), "{err}");
}

#[test]
fn a_hunk_without_trailing_context_prefers_the_end_of_the_file() {
    // As `git diff` writes a change to the last lines: context only before.
    let dir = worktree(&[("f", "k\nv\nk\nv\n")]);
    let text = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n k\n-v\n+V\n";
    apply(text, dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "f"), "k\nv\nk\nV\n");
}

#[test]
fn header_without_numbers_applies_when_the_context_is_unique() {
    let dir = worktree(&[("f", "a\nb\nc\n")]);
    apply("--- a/f\n+++ b/f\n@@ @@\n b\n-c\n+C\n", dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "f"), "a\nb\nC\n");
}

#[test]
fn context_that_does_not_match_is_refused_with_the_line_that_differs() {
    let dir = worktree(&[("f", "a\nb\nc\n")]);
    let err = refused(dir.path(), "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-B\n+x\n c\n");
    assert!(matches!(&err, DiffError::DoesNotApply { path, .. } if path == "f"), "{err}");
    assert_eq!(
        err.to_string(),
        "the diff does not apply to \"f\": hunk 1 (line 3 of the diff) does not match the file: \
         line 2 reads \"b\", the hunk expects \"B\""
    );
}

#[test]
fn a_missing_no_newline_marker_is_named() {
    let dir = worktree(&[("f", "a\nb")]);
    let err = refused(dir.path(), "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n");
    assert!(err.to_string().contains("needs `\\ No newline at end of file`"), "{err}");
}

#[test]
fn one_failing_file_means_nothing_is_written() {
    let dir = worktree(&[("a.txt", "one\n"), ("b.txt", "two\n")]);
    let text = format!("{}{}", edit_of("a.txt", "one", "ONE"), edit_of("b.txt", "zwei", "TWO"));
    let err = refused(dir.path(), &text);
    assert!(matches!(&err, DiffError::DoesNotApply { path, .. } if path == "b.txt"), "{err}");
    // The same for a second failing hunk within one file.
    let dir = worktree(&[("f", "1\n2\n3\n4\n5\n6\n7\n8\n9\n")]);
    let text = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-1\n+one\n@@ -9 +9 @@\n-nine\n+9\n";
    refused(dir.path(), text);
}

#[test]
fn plan_computes_without_writing() {
    let dir = worktree(&[("f", "a\n")]);
    let before = snapshot(dir.path());
    let diff = parse(&edit_of("f", "a", "b"), MAX).expect("parse");
    let changes = plan(&diff, dir.path()).expect("plan");
    assert_eq!(changes, [Change { path: "f".into(), content: Some(b"b\n".to_vec()) }]);
    assert_eq!(snapshot(dir.path()), before);
    write(&changes, dir.path()).expect("write");
    assert_eq!(read(dir.path(), "f"), "b\n");
}

#[test]
fn sections_for_one_file_apply_in_turn() {
    let dir = worktree(&[("f", "a\n")]);
    let text = format!("{}{}", edit_of("f", "a", "b"), edit_of("f", "b", "c"));
    let changes = apply(&text, dir.path(), MAX).expect("applies");
    assert_eq!(changes.len(), 1);
    assert_eq!(read(dir.path(), "f"), "c\n");
}

#[test]
fn hunks_out_of_order_still_apply() {
    let dir = worktree(&[("f", "1\n2\n3\n4\n5\n6\n7\n8\n9\n")]);
    let text = "--- a/f\n+++ b/f\n@@ -9 +9 @@\n-9\n+nine\n@@ -1 +1 @@\n-1\n+one\n";
    apply(text, dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "f"), "one\n2\n3\n4\n5\n6\n7\n8\nnine\n");
}

#[test]
fn no_newline_at_end_of_file_both_ways() {
    let dir = worktree(&[("add", "a\nb"), ("drop", "a\nb\n")]);
    let text = "\
--- a/add
+++ b/add
@@ -1,2 +1,2 @@
 a
-b
\\ No newline at end of file
+b
--- a/drop
+++ b/drop
@@ -1,2 +1,2 @@
 a
-b
+b
\\ No newline at end of file
";
    apply(text, dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "add"), "a\nb\n");
    assert_eq!(read(dir.path(), "drop"), "a\nb");
}

#[test]
fn files_are_created_from_dev_null_with_their_folders() {
    let dir = worktree(&[("keep", "k\n")]);
    let text = "\
diff --git a/new/deep/file.py b/new/deep/file.py
new file mode 100644
--- /dev/null
+++ b/new/deep/file.py
@@ -0,0 +1,2 @@
+print(1)
+print(2)
diff --git a/empty b/empty
new file mode 100644
index 0000000..e69de29
";
    apply(text, dir.path(), MAX).expect("applies");
    assert_eq!(read(dir.path(), "new/deep/file.py"), "print(1)\nprint(2)\n");
    assert_eq!(read(dir.path(), "empty"), "");
}

#[test]
fn creating_a_file_that_exists_is_refused() {
    let dir = worktree(&[("f", "there\n")]);
    let err = refused(dir.path(), "--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+new\n");
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn deleting_needs_the_whole_file() {
    let dir = worktree(&[("f", "a\nb\n")]);
    let err = refused(dir.path(), "--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n");
    assert!(err.to_string().contains("not the whole file"), "{err}");
    let changes = apply("--- a/f\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n", dir.path(), MAX)
        .expect("applies");
    assert_eq!(changes, [Change { path: "f".into(), content: None }]);
    assert!(!dir.path().join("f").exists());
}

#[test]
fn crlf_files_match_byte_for_byte() {
    let dir = worktree(&[("f", "a\r\nb\r\nc\r\n")]);
    apply("--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\r\n-b\r\n+B\r\n c\r\n", dir.path(), MAX)
        .expect("applies");
    assert_eq!(read(dir.path(), "f"), "a\r\nB\r\nc\r\n");
    // The same hunk without the CRs does not match.
    let err = refused(dir.path(), "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-B\n+b\n c\n");
    assert!(matches!(err, DiffError::DoesNotApply { .. }), "{err}");
}

#[test]
fn existing_files_keep_their_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = worktree(&[("run.sh", "echo a\n")]);
    let file = dir.path().join("run.sh");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).expect("chmod");
    apply(&edit_of("run.sh", "echo a", "echo b"), dir.path(), MAX).expect("applies");
    let mode = fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(read(dir.path(), "run.sh"), "echo b\n");
    let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(leftovers.len(), 1, "a temporary file was left behind");
}

// ---------------------------------------------------------------------------
// Refusals

#[test]
fn hostile_paths_are_refused_before_anything_is_written() {
    let dir = worktree(&[("ok.txt", "a\n"), ("sub/x", "a\n")]);
    fs::create_dir_all(dir.path().join(".git/hooks")).expect("git dir");
    let cases = [
        ("/etc/passwd", "absolute paths"),
        ("../outside.txt", "`..`"),
        ("sub/../../outside.txt", "`..`"),
        ("./ok.txt", "not normalised"),
        ("sub//x", "not normalised"),
        ("sub/", "not normalised"),
        (".git/hooks/pre-commit", "`.git`"),
        (".GIT/config", "`.git`"),
        ("sub/.Git/config", "`.git`"),
        ("..\\outside", "backslashes"),
    ];
    for (path, why) in cases {
        // Both a creation and an edit of an existing file, with the
        // `diff --git` header and without.
        let create = format!("--- /dev/null\n+++ {path}\n@@ -0,0 +1 @@\n+#!/bin/sh\n");
        let edit = format!("--- {path}\n+++ {path}\n@@ -1 +1 @@\n-a\n+b\n");
        let git = format!(
            "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+x\n"
        );
        for text in [create, edit, git] {
            let err = refused(dir.path(), &text);
            let message = err.to_string();
            assert!(matches!(err, DiffError::UnsafePath { .. }), "{path}: {message}");
            assert!(message.contains(why), "{path}: {message}");
        }
    }
    assert!(!dir.path().join(".git/hooks/pre-commit").exists());
}

#[test]
fn a_symlinked_folder_inside_the_worktree_is_refused() {
    let dir = worktree(&[("real/file.txt", "a\n")]);
    // A committed link pointing inside the repository is refused all the same.
    std::os::unix::fs::symlink("real", dir.path().join("link")).expect("symlink");
    let err = refused(dir.path(), &edit_of("link/file.txt", "a", "b"));
    assert_eq!(err.to_string(), "refusing to touch \"link/file.txt\": \"link\" is a symbolic link");
    let err = refused(dir.path(), "--- /dev/null\n+++ b/link/new.txt\n@@ -0,0 +1 @@\n+x\n");
    assert!(matches!(err, DiffError::UnsafePath { .. }), "{err}");
}

#[test]
fn a_symlink_to_outside_the_worktree_is_refused() {
    let outside = worktree(&[("secret.txt", "a\n")]);
    let dir = worktree(&[]);
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("symlink");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.path().join("file"))
        .expect("symlink");
    let before = snapshot(outside.path());
    refused(dir.path(), &edit_of("out/secret.txt", "a", "b"));
    let err = refused(dir.path(), &edit_of("file", "a", "b"));
    assert!(err.to_string().contains("the file is a symbolic link"), "{err}");
    let err = refused(dir.path(), "--- a/file\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n");
    assert!(matches!(err, DiffError::UnsafePath { .. }), "{err}");
    assert_eq!(snapshot(outside.path()), before);
}

#[test]
fn symlinks_submodules_executables_and_mode_changes_are_refused() {
    let dir = worktree(&[("f", "a\n")]);
    let cases = [
        (
            "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n",
            "symbolic links",
        ),
        (
            "diff --git a/m b/m\nnew file mode 160000\nindex 0000000..1234567\n--- /dev/null\n+++ b/m\n@@ -0,0 +1 @@\n+Subproject commit 1234567890123456789012345678901234567890\n",
            "submodules",
        ),
        (
            "diff --git a/f b/f\nindex 1234567..89abcde 120000\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n",
            "symbolic links",
        ),
        (
            "diff --git a/run b/run\nnew file mode 100755\n--- /dev/null\n+++ b/run\n@@ -0,0 +1 @@\n+echo\n",
            "executable",
        ),
        ("diff --git a/f b/f\nold mode 100644\nnew mode 100755\n", "file mode"),
    ];
    for (text, why) in cases {
        let err = refused(dir.path(), text);
        assert!(err.to_string().contains(why), "{text}: {err}");
    }
}

#[test]
fn binary_patches_renames_and_copies_are_refused() {
    let dir = worktree(&[("f", "a\n"), ("img.png", "png")]);
    let cases = [
        (
            "diff --git a/img.png b/img.png\nindex 1234567..89abcde 100644\nGIT binary patch\nliteral 5\nMcmZ?wbhEKg0\n\nliteral 0\nHcmV?d00001\n\n",
            "binary",
        ),
        (
            "diff --git a/img.png b/img.png\nindex 1234567..89abcde 100644\nBinary files a/img.png and b/img.png differ\n",
            "binary",
        ),
        ("diff --git a/f b/g\nsimilarity index 100%\nrename from f\nrename to g\n", "renames"),
        ("diff --git a/f b/g\nsimilarity index 100%\ncopy from f\ncopy to g\n", "copies"),
        ("--- a/f\n+++ b/g\n@@ -1 +1 @@\n-a\n+b\n", "renames"),
    ];
    for (text, why) in cases {
        let err = refused(dir.path(), text);
        assert!(matches!(err, DiffError::Unsupported { .. }), "{text}: {err}");
        assert!(err.to_string().contains(why), "{text}: {err}");
    }
    // Binary bytes written as hunk lines are refused too.
    let nul = "--- /dev/null\n+++ b/data.txt\n@@ -0,0 +1 @@\n+a\0b\u{1}\n";
    let err = refused(dir.path(), nul);
    assert!(err.to_string().contains("NUL byte"), "{err}");
    // A rename without a git header still names what it renames.
    let err = refused(dir.path(), "diff --git a/f b/g\nrename from f\nrename to g\n");
    assert!(!err.to_string().contains("\"\""), "{err}");
}

#[test]
fn write_checks_each_path_again() {
    let dir = worktree(&[("d/f", "a\n"), ("elsewhere/f", "a\n")]);
    let diff = parse(&edit_of("d/f", "a", "b"), MAX).expect("parse");
    let changes = plan(&diff, dir.path()).expect("plan");
    // Between plan and write the folder is swapped for a link.
    fs::remove_dir_all(dir.path().join("d")).expect("rm");
    std::os::unix::fs::symlink("elsewhere", dir.path().join("d")).expect("symlink");
    let err = write(&changes, dir.path()).expect_err("refused");
    assert!(matches!(err, DiffError::UnsafePath { .. }), "{err}");
    assert_eq!(read(dir.path(), "elsewhere/f"), "a\n");
}

// ---------------------------------------------------------------------------
// Rendering

#[test]
fn unified_writes_git_style_hunks() {
    let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    let new = old.replace("line 10\n", "line ten\n").replace("line 12\n", "");
    let expected = "\
diff --git a/src/x.txt b/src/x.txt
--- a/src/x.txt
+++ b/src/x.txt
@@ -7,9 +7,8 @@
 line 7
 line 8
 line 9
-line 10
+line ten
 line 11
-line 12
 line 13
 line 14
 line 15
";
    assert_eq!(unified("src/x.txt", &old, &new), expected);
    assert_eq!(unified("src/x.txt", &old, &old), "");
}

#[test]
fn distant_changes_get_separate_hunks() {
    let old: String = (1..=30).map(|i| format!("{i}\n")).collect();
    let new = old.replacen("2\n", "two\n", 1).replace("\n29\n", "\ntwenty-nine\n");
    let text = unified("f", &old, &new);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("@@")).collect();
    assert_eq!(headers, ["@@ -1,5 +1,5 @@", "@@ -26,5 +26,5 @@"]);
}

/// Old and new contents for round trips and `git apply` checks.
fn round_trip_cases() -> Vec<(&'static str, String, String)> {
    let long: String = (1..=40).map(|i| format!("row {i}\n")).collect();
    vec![
        ("one line changed", "a\nb\nc\n".into(), "a\nB\nc\n".into()),
        ("added at start", "a\nb\n".into(), "new\na\nb\n".into()),
        ("added at end", "a\nb\n".into(), "a\nb\nnew\n".into()),
        ("removed at start and end", "a\nb\nc\nd\n".into(), "b\nc\n".into()),
        ("empty to content", "".into(), "a\nb\n".into()),
        ("content to empty", "a\nb\n".into(), "".into()),
        ("final newline added", "a\nb".into(), "a\nb\n".into()),
        ("final newline removed", "a\nb\n".into(), "a\nb".into()),
        ("no final newline, middle edit", "a\nb\nc".into(), "a\nB\nc".into()),
        ("no final newline, last line edit", "a\nb".into(), "a\nc".into()),
        ("crlf", "a\r\nb\r\nc\r\n".into(), "a\r\nB\r\nc\r\nd\r\n".into()),
        ("unicode", "héllo\nwörld\n".into(), "hello\nwörld 🌍\n".into()),
        ("repeated lines", "x\nx\nx\nx\nx\n".into(), "x\nx\ny\nx\nx\nx\n".into()),
        (
            "many edits",
            long.clone(),
            long.replace("row 3\n", "").replace("row 20", "ROW 20") + "row 41\n",
        ),
        ("reordered", "a\nb\nc\nd\ne\nf\n".into(), "f\ne\nd\nc\nb\na\n".into()),
        ("blank lines", "a\n\n\nb\n".into(), "a\n\nb\n\n".into()),
        ("whitespace only", "a\n  b\n".into(), "a\n\tb\n".into()),
        ("lines like headers", "--- a\n+++ b\n@@ x\n".into(), "--- a\n+++ c\n@@ y\n-- \n".into()),
    ]
}

#[test]
fn unified_then_apply_gives_the_new_content() {
    for (name, old, new) in round_trip_cases() {
        let dir = worktree(&[("dir/file.txt", &old)]);
        let text = unified("dir/file.txt", &old, &new);
        apply(&text, dir.path(), MAX).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert_eq!(read(dir.path(), "dir/file.txt"), new, "{name}:\n{text}");
    }
}

#[test]
fn unified_change_creates_and_deletes() {
    let dir = worktree(&[("gone.txt", "bye\n"), ("empty.txt", "")]);
    let text = [
        unified_change("a b/new file.txt", None, Some("hi\nthere")),
        unified_change("made-empty.txt", None, Some("")),
        unified_change("gone.txt", Some("bye\n"), None),
        unified_change("empty.txt", Some(""), None),
    ]
    .concat();
    apply(&text, dir.path(), MAX).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(read(dir.path(), "a b/new file.txt"), "hi\nthere");
    assert_eq!(read(dir.path(), "made-empty.txt"), "");
    assert!(!dir.path().join("gone.txt").exists());
    assert!(!dir.path().join("empty.txt").exists());
}

#[test]
fn a_large_rewrite_still_round_trips() {
    let old: String = (0..3000).map(|i| format!("old {i}\n")).collect();
    let new: String = (0..3000).map(|i| format!("new {i}\n")).collect();
    let dir = worktree(&[("big", &old)]);
    let text = unified("big", &old, &new);
    apply(&text, dir.path(), 4 * MAX).expect("applies");
    assert_eq!(read(dir.path(), "big"), new);
}

#[test]
fn git_apply_accepts_what_unified_writes() {
    if !have_git() {
        eprintln!("skipped: the git command line is not installed");
        return;
    }
    for (name, old, new) in round_trip_cases() {
        let text = unified("src/file.txt", &old, &new);
        git_apply_check(&[("src/file.txt", &old)], &text)
            .unwrap_or_else(|e| panic!("{name}: git apply refused:\n{e}\n{text}"));
    }
    let odd = [("with space/x y.txt", "a\n"), ("quote\"d.txt", "a\n"), ("café.txt", "a\n")];
    for (path, old) in odd {
        let text = unified(path, old, "b\n");
        git_apply_check(&[(path, old)], &text)
            .unwrap_or_else(|e| panic!("{path}: git apply refused:\n{e}\n{text}"));
        let diff = parse(&text, MAX).expect("parse");
        assert_eq!(touched(&diff), [path]);
    }
    let create = unified_change("new/file.txt", None, Some("x\n"));
    let create_empty = unified_change("new/empty.txt", None, Some(""));
    let delete = unified_change("gone.txt", Some("a\nb"), None);
    let text = [create, create_empty, delete].concat();
    git_apply_check(&[("gone.txt", "a\nb")], &text)
        .unwrap_or_else(|e| panic!("git apply refused:\n{e}\n{text}"));
}
