//! Rendering unified diffs in git's layout, from a Myers line diff.

/// Lines of context `unified` writes around each change, as `git diff` does.
const CONTEXT: usize = 3;

/// Past this many differing lines `unified` stops looking for the shortest
/// edit and replaces the differing middle of the file as one block.
const MAX_EDIT_DISTANCE: usize = 1000;

/// The diff of one file from `old` to `new`; `None` is no file.
pub(super) fn change(path: &str, old: Option<&str>, new: Option<&str>) -> String {
    if old == new {
        return String::new();
    }
    let mut out = format!("diff --git {} {}\n", quote("a/", path), quote("b/", path));
    match (old, new) {
        (None, _) => out.push_str("new file mode 100644\n"),
        (_, None) => out.push_str("deleted file mode 100644\n"),
        _ => {}
    }
    let old_lines: Vec<&str> = old.unwrap_or_default().split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.unwrap_or_default().split_inclusive('\n').collect();
    if old_lines.is_empty() && new_lines.is_empty() {
        // git writes no `---`/`+++` lines for an empty file created or deleted.
        return out;
    }
    let old_name = old.map_or("/dev/null".to_owned(), |_| file_header_name("a/", path));
    let new_name = new.map_or("/dev/null".to_owned(), |_| file_header_name("b/", path));
    out.push_str(&format!("--- {old_name}\n+++ {new_name}\n"));
    let ops = line_ops(&old_lines, &new_lines);
    for hunk in group_hunks(&ops) {
        render_hunk(&mut out, &ops[hunk.0..hunk.1], &old_lines, &new_lines);
    }
    out
}

/// A name for the `diff --git` line, C-quoted when git would quote it.
fn quote(prefix: &str, path: &str) -> String {
    let needs = path.chars().any(|c| c == '"' || c == '\\' || c.is_control());
    if !needs {
        return format!("{prefix}{path}");
    }
    let mut out = String::from("\"");
    out.push_str(prefix);
    for c in path.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A name for a `---`/`+++` line; git ends names holding a space with a tab.
fn file_header_name(prefix: &str, path: &str) -> String {
    let name = quote(prefix, path);
    if !name.starts_with('"') && path.contains(' ') { format!("{name}\t") } else { name }
}

/// One step of a line diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Old line `.0` equals new line `.1`.
    Equal(usize, usize),
    /// Old line `.0` goes.
    Delete(usize),
    /// New line `.0` comes.
    Insert(usize),
}

/// The line diff of two files: common start and end kept aside, the middle
/// diffed with Myers' algorithm.
fn line_ops(old: &[&str], new: &[&str]) -> Vec<Op> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_suffix = old.len().min(new.len()) - prefix;
    let suffix =
        old.iter().rev().zip(new.iter().rev()).take(max_suffix).take_while(|(a, b)| a == b).count();
    let mut ops: Vec<Op> = (0..prefix).map(|i| Op::Equal(i, i)).collect();
    let middle = myers(&old[prefix..old.len() - suffix], &new[prefix..new.len() - suffix]);
    ops.extend(middle.into_iter().map(|op| match op {
        Op::Equal(a, b) => Op::Equal(a + prefix, b + prefix),
        Op::Delete(a) => Op::Delete(a + prefix),
        Op::Insert(b) => Op::Insert(b + prefix),
    }));
    let (old_tail, new_tail) = (old.len() - suffix, new.len() - suffix);
    ops.extend((0..suffix).map(|i| Op::Equal(old_tail + i, new_tail + i)));
    ops
}

/// Myers' shortest edit script; past [`MAX_EDIT_DISTANCE`] differing lines
/// everything is replaced as one block.
fn myers(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (n + m) as usize;
    let mut trace: Vec<Vec<isize>> = Vec::new();
    for d in 0..=max {
        if d > MAX_EDIT_DISTANCE {
            return replace_all(a.len(), b.len());
        }
        let d_i = d as isize;
        let mut row = vec![0isize; 2 * d + 1];
        for k in (-d_i..=d_i).step_by(2) {
            let mut x = if d == 0 {
                0
            } else {
                let prev = &trace[d - 1];
                let at = |k: isize| prev[(k + d_i - 1) as usize];
                if k == -d_i || (k != d_i && at(k - 1) < at(k + 1)) {
                    at(k + 1)
                } else {
                    at(k - 1) + 1
                }
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            row[(k + d_i) as usize] = x;
            if x >= n && y >= m {
                trace.push(row);
                return backtrack(&trace, n, m);
            }
        }
        trace.push(row);
    }
    replace_all(a.len(), b.len())
}

/// Walks the Myers trace back from the end into a list of steps.
fn backtrack(trace: &[Vec<isize>], n: isize, m: isize) -> Vec<Op> {
    let (mut x, mut y) = (n, m);
    let mut ops = Vec::new();
    for d in (1..trace.len()).rev() {
        let d_i = d as isize;
        let k = x - y;
        let at = |k: isize| trace[d - 1][(k + d_i - 1) as usize];
        let prev_k = if k == -d_i || (k != d_i && at(k - 1) < at(k + 1)) { k + 1 } else { k - 1 };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            x -= 1;
            y -= 1;
            ops.push(Op::Equal(x as usize, y as usize));
        }
        if x == prev_x {
            y -= 1;
            ops.push(Op::Insert(y as usize));
        } else {
            x -= 1;
            ops.push(Op::Delete(x as usize));
        }
    }
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        ops.push(Op::Equal(x as usize, y as usize));
    }
    ops.reverse();
    ops
}

fn replace_all(old: usize, new: usize) -> Vec<Op> {
    (0..old).map(Op::Delete).chain((0..new).map(Op::Insert)).collect()
}

/// Splits the steps into hunks: ranges of `ops` holding changes with up to
/// [`CONTEXT`] equal lines around them; changes closer than twice that share
/// a hunk.
fn group_hunks(ops: &[Op]) -> Vec<(usize, usize)> {
    let changes: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Equal(..)))
        .map(|(i, _)| i)
        .collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &i in &changes {
        let start = i.saturating_sub(CONTEXT);
        let end = (i + 1 + CONTEXT).min(ops.len());
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    hunks
}

/// Writes one hunk: its `@@` header and lines.
fn render_hunk(out: &mut String, ops: &[Op], old: &[&str], new: &[&str]) {
    let old_first = ops.iter().find_map(|op| match op {
        Op::Equal(a, _) | Op::Delete(a) => Some(*a),
        Op::Insert(_) => None,
    });
    let new_first = ops.iter().find_map(|op| match op {
        Op::Equal(_, b) | Op::Insert(b) => Some(*b),
        Op::Delete(_) => None,
    });
    let old_count = ops.iter().filter(|op| !matches!(op, Op::Insert(_))).count();
    let new_count = ops.iter().filter(|op| !matches!(op, Op::Delete(_))).count();
    // Only an empty file gives a side without lines: git then writes `0,0`.
    let old_start = old_first.map_or(0, |a| a + 1);
    let new_start = new_first.map_or(0, |b| b + 1);
    out.push_str(&format!(
        "@@ -{} +{} @@\n",
        range(old_start, old_count),
        range(new_start, new_count)
    ));
    for op in ops {
        let (marker, text) = match *op {
            Op::Equal(a, _) => (' ', old[a]),
            Op::Delete(a) => ('-', old[a]),
            Op::Insert(b) => ('+', new[b]),
        };
        out.push(marker);
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push_str("\n\\ No newline at end of file\n");
        }
    }
}

/// A hunk header range: `start` alone for one line, else `start,count`.
fn range(start: usize, count: usize) -> String {
    if count == 1 { start.to_string() } else { format!("{start},{count}") }
}
