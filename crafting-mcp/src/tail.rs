//! The last lines of a log, with a cap on lines and on bytes.

/// What [`tail`] keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The kept lines, joined by `\n`, without a final newline.
    pub text: String,
    /// How many lines `text` holds.
    pub lines: usize,
    /// True when earlier output exists that `text` leaves out.
    pub omitted_before: bool,
}

/// The last `max_lines` lines of `bytes`, at most `max_bytes` bytes of them.
///
/// `from_middle` says `bytes` does not start at the beginning of the log, so
/// its first line is probably cut: it is dropped when a whole line follows.
/// A line longer than `max_bytes` keeps its last `max_bytes` bytes. Invalid
/// UTF-8 is replaced, never fatal.
pub fn tail(bytes: &[u8], from_middle: bool, max_lines: usize, max_bytes: usize) -> Tail {
    let mut omitted_before = from_middle;
    let mut body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.len() > max_bytes {
        body = &body[body.len() - max_bytes..];
        omitted_before = true;
    }
    if omitted_before && let Some(cut) = body.iter().position(|b| *b == b'\n') {
        body = &body[cut + 1..];
    }
    if max_lines == 0 || body.is_empty() {
        return Tail {
            text: String::new(),
            lines: 0,
            omitted_before: omitted_before || !body.is_empty(),
        };
    }

    // Walk back from the end until `max_lines` line starts have been seen.
    let mut seen = 0;
    let mut start = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == max_lines {
                start = i + 1;
                omitted_before = true;
                break;
            }
        }
    }
    let kept = &body[start..];
    let lines = kept.iter().filter(|b| **b == b'\n').count() + 1;
    Tail { text: String::from_utf8_lossy(kept).into_owned(), lines, omitted_before }
}

/// [`tail`] over text already in memory, such as the API's `log_tail`.
pub fn tail_text(text: &str, max_lines: usize, max_bytes: usize) -> Tail {
    tail(text.as_bytes(), false, max_lines, max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn keeps_the_last_lines() {
        let t = tail(numbered(10).as_bytes(), false, 3, 1 << 20);
        assert_eq!(t.text, "line 8\nline 9\nline 10");
        assert_eq!((t.lines, t.omitted_before), (3, true));
    }

    #[test]
    fn a_short_log_is_kept_whole() {
        let t = tail(b"one\ntwo", false, 10, 1 << 20);
        assert_eq!(t, Tail { text: "one\ntwo".into(), lines: 2, omitted_before: false });
        let empty = tail(b"", false, 10, 100);
        assert_eq!(empty, Tail { text: String::new(), lines: 0, omitted_before: false });
    }

    #[test]
    fn the_byte_cap_wins_over_the_line_count() {
        let log = numbered(100_000);
        let t = tail(log.as_bytes(), false, 2000, 4096);
        assert!(t.text.len() <= 4096);
        assert!(t.text.ends_with("line 100000"));
        assert!(t.text.starts_with("line "), "no cut line at the start: {:?}", &t.text[..20]);
        assert!(t.omitted_before);
    }

    #[test]
    fn a_slice_from_the_middle_drops_its_cut_first_line() {
        let t = tail(b"ne 4\nline 5\nline 6\n", true, 10, 1 << 20);
        assert_eq!(t.text, "line 5\nline 6");
        assert!(t.omitted_before);
    }

    #[test]
    fn one_huge_line_keeps_its_end() {
        let log = "x".repeat(10_000) + "END";
        let t = tail(log.as_bytes(), false, 5, 100);
        assert_eq!(t.text.len(), 100);
        assert!(t.text.ends_with("END"));
        assert_eq!(t.lines, 1);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let t = tail(b"ok\n\xff\xfe bad\n", false, 5, 100);
        assert_eq!(t.lines, 2);
        assert!(t.text.starts_with("ok\n"));
    }

    #[test]
    fn zero_lines_asked_gives_nothing() {
        let t = tail_text("a\nb\n", 0, 100);
        assert_eq!((t.text.as_str(), t.lines, t.omitted_before), ("", 0, true));
    }
}
