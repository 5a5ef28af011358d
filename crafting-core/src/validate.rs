//! Validation of everything that becomes a directory name, a git argument or
//! a path: project names, recipe names, subproject paths, refs and git URLs.
//!
//! The rules live here, in the engine, so that every front end (HTTP, MCP, an
//! embedding program) gets the same refusals with the same sentences.

use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result};

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$").expect("valid regex"));
static RECIPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9_-]{0,31}$").expect("valid regex"));
static CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@").expect("valid regex"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
        .expect("valid regex")
});

/// Checks a project or token name: it becomes a directory name.
pub fn name(kind: &'static str, value: &str) -> Result<()> {
    if value == "." || value == ".." || !NAME.is_match(value) {
        let shown = shorten(value);
        return Err(Error::invalid(
            "invalid_name",
            format!(
                "{kind} name {shown:?} is not allowed: use 1 to 64 letters, digits, '.', '_' or '-', \
                 starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// Checks a recipe name such as `lint` or `test`.
pub fn recipe_name(value: &str) -> Result<()> {
    if !RECIPE.is_match(value) {
        return Err(Error::invalid(
            "invalid_recipe",
            format!(
                "recipe name {:?} is not allowed: use 1 to 32 lowercase letters, digits, '_' or '-'",
                shorten(value)
            ),
        ));
    }
    Ok(())
}

/// Checks and normalises a subproject path: relative, inside the repository,
/// `/`-separated, `.` for the root.
pub fn subproject_path(value: &str) -> Result<String> {
    let refuse = |why: &str| {
        Error::invalid(
            "invalid_subproject",
            format!(
                "subproject path {:?} {why}; give a folder relative to the repository root, such as \".\" or \"sdk/python\"",
                shorten(value)
            ),
        )
    };
    if value.is_empty() || value.len() > 512 {
        return Err(refuse("must be 1 to 512 characters"));
    }
    if value.contains('\0') || value.contains('\\') || value.chars().any(char::is_control) {
        return Err(refuse("contains a control character or a backslash"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for comp in Path::new(value).components() {
        match comp {
            Component::CurDir => {}
            Component::Normal(p) => {
                let p = p.to_str().ok_or_else(|| refuse("is not valid UTF-8"))?;
                if p == ".git" {
                    return Err(refuse("points into .git"));
                }
                parts.push(p);
            }
            Component::ParentDir => return Err(refuse("leaves the repository")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("is absolute")),
        }
    }
    if parts.is_empty() { Ok(".".to_owned()) } else { Ok(parts.join("/")) }
}

/// Checks a git ref given by a user: a branch, a tag or a commit id.
pub fn git_ref(value: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::invalid(
            "invalid_ref",
            format!("ref {:?} {why}; give a branch name, a tag or a commit id", shorten(value)),
        )
    };
    if value.is_empty() || value.len() > 255 {
        return Err(bad("must be 1 to 255 characters"));
    }
    if value.starts_with('-') {
        return Err(bad("starts with '-' and could be read as an option"));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c)) {
        return Err(bad("contains a character git does not allow in refs"));
    }
    if value.contains("..")
        || value.contains("//")
        || value.contains("@{")
        || value.starts_with('/')
        || value.ends_with('/')
        || value.ends_with('.')
        || value.ends_with(".lock")
        || value.split('/').any(|c| c.starts_with('.'))
    {
        return Err(bad("is not a well-formed ref name"));
    }
    Ok(())
}

/// Where a validated git URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitSource {
    /// A network URL (`https://`, `http://`, `git://`).
    Remote(String),
    /// A local repository, as a canonical absolute path.
    Local(PathBuf),
}

impl GitSource {
    /// The string handed to libgit2.
    pub fn as_fetch_url(&self) -> String {
        match self {
            GitSource::Remote(u) => u.clone(),
            GitSource::Local(p) => p.display().to_string(),
        }
    }
}

/// Checks a git URL. Local paths and `file://` URLs must lie under one of
/// `local_roots` and never inside `workspace`.
pub fn git_url(value: &str, local_roots: &[PathBuf], workspace: &Path) -> Result<GitSource> {
    let shown = redact_credentials(&shorten(value));
    let bad = |why: String| Error::invalid("invalid_git_url", format!("git URL {shown:?} {why}"));
    if value.is_empty() || value.len() > 2048 {
        return Err(bad("must be 1 to 2048 characters".into()));
    }
    if value.starts_with('-') {
        return Err(bad("starts with '-' and could be read as an option".into()));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains whitespace or a control character".into()));
    }
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("git://")
    {
        let rest = &value[value.find("://").map(|i| i + 3).unwrap_or(0)..];
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit('@').next().unwrap_or("");
        if host.is_empty() || host.starts_with('-') {
            return Err(bad("has no host".into()));
        }
        return Ok(GitSource::Remote(value.to_owned()));
    }
    let local = if let Some(rest) = value.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if value.starts_with('/') {
        PathBuf::from(value)
    } else if value.contains("::") {
        return Err(bad("uses a transport helper (\"<helper>::\"), which is refused".into()));
    } else if lower.starts_with("ssh://") || value.contains('@') && value.contains(':') {
        return Err(bad(
            "is an ssh URL; this build fetches over https, http, git:// or from local paths".into(),
        ));
    } else {
        return Err(bad(
            "is neither an https/http/git URL nor an absolute local path or file:// URL".into(),
        ));
    };
    if local_roots.is_empty() {
        return Err(bad(
            "is local, and no local repositories are allowed: list their parent folders in CRAFTING_LOCAL_GIT_ROOTS".into(),
        ));
    }
    // The allowed folders are never named in errors: they are the server's
    // layout, not the caller's business.
    let outside = || {
        bad("is outside the folders allowed for local repositories; an admin can add its \
             parent folder to CRAFTING_LOCAL_GIT_ROOTS"
            .into())
    };
    // A first look by the words of the path alone, so that a path outside
    // the roots is refused before anything about it is read from disk.
    if !local_roots.iter().any(|root| lexical(&local).starts_with(lexical(root))) {
        return Err(outside());
    }
    let canonical = local.canonicalize().map_err(|e| bad(format!("cannot be read: {e}")))?;
    let workspace = workspace.canonicalize().unwrap_or_else(|_| workspace.to_path_buf());
    let roots: Vec<PathBuf> = local_roots.iter().filter_map(|r| r.canonicalize().ok()).collect();
    let inside = |p: &Path| {
        p.canonicalize()
            .is_ok_and(|p| !p.starts_with(&workspace) && roots.iter().any(|r| p.starts_with(r)))
    };
    if canonical.starts_with(&workspace) {
        return Err(bad("lies inside the service's own workspace".into()));
    }
    if !inside(&canonical) {
        return Err(outside());
    }
    // The repository's own folders must lie under the roots too: a `.git`
    // file or link, a worktree's common folder, or an alternates list can
    // point anywhere.
    if let Ok(repo) = git2::Repository::open(&canonical) {
        let mut places = vec![repo.path().to_path_buf(), repo.commondir().to_path_buf()];
        let objects = repo.commondir().join("objects");
        if let Ok(list) = std::fs::read_to_string(objects.join("info/alternates")) {
            places.extend(
                list.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| objects.join(l)),
            );
        }
        if !places.iter().all(|p| inside(p)) {
            return Err(bad(
                "keeps its git data (through a .git file or link, or borrowed objects) outside \
                 the folders allowed for local repositories"
                    .into(),
            ));
        }
    }
    Ok(GitSource::Local(canonical))
}

/// `path` with `.` and `..` resolved by their words, without reading the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Checks an e-mail address for the digest's recipient list.
pub fn email(value: &str) -> Result<()> {
    if value.len() > 254 || !EMAIL.is_match(value) {
        return Err(Error::invalid(
            "invalid_email",
            format!("{:?} is not an e-mail address such as team@example.org", shorten(value)),
        ));
    }
    Ok(())
}

/// Replaces `user:password@` in any URL inside `text` with `***@`.
pub fn redact_credentials(text: &str) -> String {
    CREDENTIALS.replace_all(text, "${1}***@").into_owned()
}

/// At most 80 characters of a value, for error messages.
fn shorten(value: &str) -> String {
    if value.chars().count() <= 80 {
        value.to_owned()
    } else {
        let mut s: String = value.chars().take(77).collect();
        s.push_str("...");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "crafting-table", "A.b_c-9"] {
            assert!(name("project", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "-a", ".hidden", "a b", &"x".repeat(65)] {
            assert!(name("project", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subprojects_normalise_and_stay_inside() {
        assert_eq!(subproject_path(".").unwrap(), ".");
        assert_eq!(subproject_path("./sdk//py/").unwrap(), "sdk/py");
        for bad in ["../x", "a/../../b", "/etc", "a\\b", ".git/hooks", ""] {
            assert!(subproject_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refs() {
        for ok in ["main", "feature/x", "v1.2.3", "0123abcd"] {
            assert!(git_ref(ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "--upload-pack=x", "a..b", "a b", "HEAD@{1}", "x.lock", "/a", "a/.b"] {
            assert!(git_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let ws = Path::new("/nonexistent-workspace");
        assert!(git_url("https://example.org/a.git", &[], ws).is_ok());
        for bad in [
            "--upload-pack=touch /tmp/x",
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "git@example.org:a/b.git",
            "relative/path",
            "file:///etc",
            "/etc",
        ] {
            assert!(git_url(bad, &[], ws).is_err(), "{bad}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_credentials("fetch https://bob:s3cret@example.org/x.git failed"),
            "fetch https://***@example.org/x.git failed"
        );
    }
}
