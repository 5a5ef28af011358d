//! Turning the paths tools print into paths relative to the repository root.
//!
//! Tools print paths relative to the folder they ran in, relative to a project
//! root of their own (a cargo workspace, pytest's rootdir), or absolute. Windows
//! tools use backslashes and drive letters, SARIF uses `file://` URIs. Every
//! finding stores one form: relative to the repository root, `/`-separated,
//! without `.` or `..` components.

use crate::registry::ParseContext;

/// Maps printed paths onto repository-relative ones for one job.
#[derive(Debug, Clone)]
pub(crate) struct PathMapper {
    /// The repository root's components; the first is `/` or a drive like `c:`.
    root: Vec<String>,
    /// The folder the recipe ran in, as repository-relative components.
    work_dir: Vec<String>,
}

/// A path split into its components, remembering whether it was absolute.
struct Split {
    absolute: bool,
    parts: Vec<String>,
}

fn is_drive(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Splits a path written with either separator. An absolute path's first
/// component is `/` or a lower-cased drive (`c:`); `.` components vanish.
fn split(raw: &str) -> Split {
    let s = raw.trim();
    let s = s.strip_prefix("file://").unwrap_or(s);
    let s = s.replace('\\', "/");
    let mut parts = Vec::new();
    let mut absolute = false;
    let mut rest = s.as_str();
    // `file:///C:/x` leaves `/C:/x`: the drive wins over the slash.
    if rest.len() >= 3 && rest.starts_with('/') && is_drive(&rest[1..3]) {
        rest = &rest[1..];
    }
    if rest.len() >= 2 && is_drive(&rest[..2]) {
        absolute = true;
        parts.push(rest[..2].to_ascii_lowercase());
        rest = &rest[2..];
    } else if rest.starts_with('/') {
        absolute = true;
        parts.push("/".to_owned());
    }
    for part in rest.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        parts.push(part.to_owned());
    }
    Split { absolute, parts }
}

/// Resolves `..` against the components before it; `None` when it climbs
/// above the start.
fn resolve(parts: impl IntoIterator<Item = String>, floor: usize) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in parts {
        if part == ".." {
            if out.len() <= floor {
                return None;
            }
            out.pop();
        } else {
            out.push(part);
        }
    }
    Some(out)
}

impl PathMapper {
    /// A mapper for the context's repository root and work dir.
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        let root = split(&ctx.repo_root.to_string_lossy());
        let root = resolve(root.parts, 1).unwrap_or_default();
        let work = split(&ctx.work_dir.to_string_lossy());
        let work_dir = if work.absolute {
            // An absolute work dir is accepted when it lies under the root.
            match work.parts.strip_prefix(root.as_slice()) {
                Some(rest) => rest.to_vec(),
                None => Vec::new(),
            }
        } else {
            resolve(work.parts, 0).unwrap_or_default()
        };
        PathMapper { root, work_dir }
    }

    /// The work dir as a repository-relative path (`""` for the root).
    pub(crate) fn work_dir(&self) -> String {
        self.work_dir.join("/")
    }

    /// Maps a path relative to the work dir (or absolute).
    pub(crate) fn map(&self, raw: &str) -> Option<String> {
        self.map_from(raw, &self.work_dir.join("/"))
    }

    /// Maps a path relative to `base`, a repository-relative folder (or
    /// absolute). `None` when the path is empty or lies outside the repository.
    pub(crate) fn map_from(&self, raw: &str, base: &str) -> Option<String> {
        let path = split(raw);
        if path.parts.is_empty() {
            return None;
        }
        if path.absolute {
            if self.root.is_empty() {
                return None;
            }
            let resolved = resolve(path.parts, 1)?;
            let rest = resolved.strip_prefix(self.root.as_slice())?;
            if rest.is_empty() {
                return None;
            }
            return Some(rest.join("/"));
        }
        let base = split(base);
        let joined = if base.absolute {
            // A base given as an absolute path must lie under the root.
            let resolved = resolve(base.parts, 1)?;
            let rest = resolved.strip_prefix(self.root.as_slice())?.to_vec();
            rest.into_iter().chain(path.parts).collect::<Vec<_>>()
        } else {
            base.parts.into_iter().chain(path.parts).collect::<Vec<_>>()
        };
        let resolved = resolve(joined, 0)?;
        if resolved.is_empty() { None } else { Some(resolved.join("/")) }
    }

    /// Maps an absolute folder onto a repository-relative one (`""` for the
    /// root itself); `None` outside the repository.
    pub(crate) fn relative_dir(&self, abs: &str) -> Option<String> {
        let path = split(abs);
        if !path.absolute || self.root.is_empty() {
            return None;
        }
        let resolved = resolve(path.parts, 1)?;
        resolved.strip_prefix(self.root.as_slice()).map(|rest| rest.join("/"))
    }

    /// The folder a relative path was printed from, given the absolute path
    /// of the same file: `abs` with `rel`'s components taken off its end
    /// (`/repo/py/pkg/tests/a.py` and `tests/a.py` give `py/pkg`), made
    /// repository-relative. `None` when `abs` is not absolute, does not end
    /// with `rel`, or lies outside the repository.
    pub(crate) fn base_of(&self, abs: &str, rel: &str) -> Option<String> {
        let path = split(abs);
        let rel = split(rel);
        if !path.absolute || rel.absolute || rel.parts.is_empty() || self.root.is_empty() {
            return None;
        }
        if rel.parts.iter().any(|p| p == "..") {
            return None;
        }
        let resolved = resolve(path.parts, 1)?;
        let dir = resolved.strip_suffix(rel.parts.as_slice())?;
        dir.strip_prefix(self.root.as_slice()).map(|rest| rest.join("/"))
    }
}

/// Whether a printed path is absolute (POSIX, Windows drive or UNC, `file://`).
pub(crate) fn is_absolute(raw: &str) -> bool {
    let s = raw.trim_start();
    let b = s.as_bytes();
    s.starts_with('/')
        || s.starts_with('\\')
        || s.starts_with("file://")
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// Decodes `%XX` escapes of a URI path; invalid escapes stay as written.
pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes what may not appear literally in a URI path.
pub(crate) fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(root: &str, work: &str) -> PathMapper {
        PathMapper::new(&ParseContext::new("rust", "lint", Some(0), root, work))
    }

    #[test]
    fn relative_paths_join_the_work_dir() {
        let m = mapper("/repo", "sub/proj");
        assert_eq!(m.map("src/main.rs").as_deref(), Some("sub/proj/src/main.rs"));
        assert_eq!(m.map("./src/../lib.rs").as_deref(), Some("sub/proj/lib.rs"));
        assert_eq!(m.map("../other/x.py").as_deref(), Some("sub/other/x.py"));
        assert_eq!(m.map("../../../etc/passwd"), None);
    }

    #[test]
    fn absolute_paths_under_the_root_become_relative() {
        let m = mapper("/work/repo/", ".");
        assert_eq!(m.map("/work/repo/a b/c.rs").as_deref(), Some("a b/c.rs"));
        assert_eq!(m.map("/work/repository/c.rs"), None);
        assert_eq!(m.map("/root/.cargo/registry/src/x/lib.rs"), None);
        assert_eq!(m.map("file:///work/repo/x.js").as_deref(), Some("x.js"));
    }

    #[test]
    fn windows_paths_are_understood() {
        let m = mapper(r"C:\build\repo", ".");
        assert_eq!(m.map(r"c:\build\repo\src\lib.rs").as_deref(), Some("src/lib.rs"));
        assert_eq!(m.map(r"src\lib.rs").as_deref(), Some("src/lib.rs"));
        assert_eq!(m.map("file:///C:/build/repo/a.ts").as_deref(), Some("a.ts"));
        assert_eq!(m.map(r"D:\elsewhere\a.ts"), None);
    }

    #[test]
    fn base_of_takes_the_relative_suffix_off() {
        let m = mapper("/work/repo", "py");
        assert_eq!(
            m.base_of("/work/repo/py/pkg/tests/a.py", "tests/a.py").as_deref(),
            Some("py/pkg")
        );
        assert_eq!(m.base_of("/work/repo/a.py", "a.py").as_deref(), Some(""));
        assert_eq!(m.base_of("/work/repo/py/pkg/tests/a.py", "other/a.py"), None);
        assert_eq!(m.base_of("/elsewhere/tests/a.py", "tests/a.py"), None);
        assert_eq!(m.base_of("tests/a.py", "tests/a.py"), None);
        assert_eq!(m.base_of("/work/repo/x/a.py", "../x/a.py"), None);
        assert!(is_absolute("/a") && is_absolute(r"C:\a") && !is_absolute("tests/a.py"));
    }

    #[test]
    fn percent_escapes_round_trip() {
        assert_eq!(percent_decode("with%20space/%C3%A9.js"), "with space/é.js");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_encode_path("with space/é.js"), "with%20space/%C3%A9.js");
    }
}
