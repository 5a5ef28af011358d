//! Pushing a fix branch and opening a pull request on a forge: Gitea (and
//! Forgejo, which keeps Gitea's API) or GitHub.
//!
//! [`pick`] tells which forge hosts a project from its git URL, [`repo_of`]
//! reads the owner and repository name from it, [`push_branch`] sends a
//! branch of the project's bare clone to the origin, and
//! [`open_pull_request`] asks the forge's API for the pull request.
//!
//! # Secrets
//!
//! Tokens travel in API request headers and, for pushes, only through
//! libgit2's credential callback: never in a URL, never in the clone's
//! config. `ForgeConfig`'s `Debug` says whether a token is set, never what it
//! is, and every error message is scrubbed of the token.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use git2::{Cred, CredentialType, PushOptions, RemoteCallbacks, Repository};
use serde_json::{Value, json};

use super::agent::{chain, mask, shorten};
use crate::validate::redact_credentials;

/// The GitHub API used when none is configured.
pub const DEFAULT_GITHUB_API: &str = "https://api.github.com";
/// The `X-GitHub-Api-Version` sent with every GitHub request.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// Bytes of a forge's answer read at most.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Characters of a forge's answer quoted in an error.
const QUOTE_CHARS: usize = 300;

/// Which forge's API to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeKind {
    /// Gitea or Forgejo, `/api/v1`.
    Gitea,
    /// GitHub or GitHub Enterprise, REST API v3.
    GitHub,
}

impl ForgeKind {
    /// The forge's name, as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            ForgeKind::Gitea => "Gitea",
            ForgeKind::GitHub => "GitHub",
        }
    }

    /// The user name a push sends beside the token: GitHub wants
    /// `x-access-token` for app installation tokens and takes it for personal
    /// ones; Gitea reads the token from the password whatever the name.
    pub fn push_username(self) -> &'static str {
        match self {
            ForgeKind::Gitea => "crafting-table",
            ForgeKind::GitHub => "x-access-token",
        }
    }
}

/// How to reach the forges.
#[derive(Clone)]
pub struct ForgeConfig {
    /// Gitea's web address, such as `https://gitea.example.org`; the API is
    /// under `/api/v1`.
    pub gitea_url: Option<String>,
    /// A Gitea access token allowed to push and open pull requests.
    pub gitea_token: Option<String>,
    /// A GitHub token allowed to push and open pull requests.
    pub github_token: Option<String>,
    /// The GitHub API base: [`DEFAULT_GITHUB_API`], or
    /// `https://<host>/api/v3` for GitHub Enterprise Server.
    pub github_api: String,
    /// How long one API request may take.
    pub timeout: Duration,
}

impl Default for ForgeConfig {
    fn default() -> ForgeConfig {
        ForgeConfig {
            gitea_url: None,
            gitea_token: None,
            github_token: None,
            github_api: DEFAULT_GITHUB_API.to_owned(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for ForgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("ForgeConfig")
            .field("gitea_url", &self.gitea_url.as_deref().map(redact_credentials))
            .field("gitea_token", &hidden(&self.gitea_token))
            .field("github_token", &hidden(&self.github_token))
            .field("github_api", &redact_credentials(&self.github_api))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The pull request to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Owner (user or organisation) of the repository.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// The branch with the fix.
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    /// Title.
    pub title: String,
    /// Description, Markdown.
    pub body: String,
}

/// An opened pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The pull request's web page.
    pub url: String,
    /// Its number in the repository.
    pub number: u64,
}

/// Why a push or a pull request failed. No message contains a token.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// A setting the operation needs is missing.
    #[error("{forge} is not configured: {what}")]
    NotConfigured {
        /// `Gitea` or `GitHub`.
        forge: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// An owner or repository name that cannot go into an API path.
    #[error("{what} {value:?} is not a valid name on a forge")]
    InvalidName {
        /// `owner` or `repository`.
        what: &'static str,
        /// The name given.
        value: String,
    },
    /// No answer within the timeout.
    #[error("the {forge} forge did not answer within {secs} s")]
    Timeout {
        /// `Gitea` or `GitHub`.
        forge: &'static str,
        /// The timeout in seconds (rounded up).
        secs: u64,
    },
    /// The connection failed.
    #[error("could not connect to {forge} at {endpoint}: {message}")]
    Connect {
        /// `Gitea` or `GitHub`.
        forge: &'static str,
        /// The URL tried, credentials removed.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// The API answered with a status other than 2xx.
    #[error("{forge} answered HTTP {status}: {body}")]
    Status {
        /// `Gitea` or `GitHub`.
        forge: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The API answered 2xx but not with a pull request.
    #[error("{forge}'s answer does not describe a pull request: {message}")]
    BadResponse {
        /// `Gitea` or `GitHub`.
        forge: &'static str,
        /// What is missing.
        message: String,
    },
    /// The request could not be sent for another reason (a malformed URL, ...).
    #[error("the request to {forge} failed: {message}")]
    Request {
        /// `Gitea` or `GitHub`.
        forge: &'static str,
        /// What failed.
        message: String,
    },
    /// A branch name git would not take.
    #[error("{0:?} is not a valid branch name")]
    InvalidBranch(String),
    /// The branch to push does not exist in the clone.
    #[error("the branch {branch:?} does not exist in the clone")]
    NoBranch {
        /// The branch name.
        branch: String,
    },
    /// libgit2 failed: opening the clone, connecting, authenticating, sending.
    #[error("git {action} failed: {message}")]
    Git {
        /// `push` or `delete branch`.
        action: &'static str,
        /// libgit2's message, credentials removed.
        message: String,
    },
    /// The remote received the push but refused to update the reference.
    #[error("the remote refused to update {refname}: {message}")]
    Rejected {
        /// The remote reference.
        refname: String,
        /// The remote's reason.
        message: String,
    },
}

/// The owner and repository name in a git URL: its last two path segments,
/// `.git` removed. Takes `https://host/owner/repo.git`,
/// `ssh://git@host:22/owner/repo`, `git@host:owner/repo.git` and local paths
/// such as `/srv/git/owner/repo.git`.
pub fn repo_of(git_url: &str) -> Option<(String, String)> {
    let path = match split_url(git_url) {
        Some((_, path)) => path,
        None => git_url,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut segments = path.split('/').filter(|s| !s.is_empty()).rev();
    let repo = segments.next()?;
    let owner = segments.next()?;
    Some((owner.to_owned(), repo.to_owned()))
}

/// Which configured forge hosts `git_url`.
///
/// The URL's host is compared, without port and case, with the Gitea URL's
/// host, then with `github.com` and the GitHub API's host. For the API host a
/// leading `api.` is dropped too, so `api.github.com` names `github.com` and
/// `api.acme.ghe.com` names `acme.ghe.com`; GitHub Enterprise Server serves
/// its API under `https://<host>/api/v3`, whose host is the web host already.
/// Only a configured forge is ever named (Gitea with a URL, GitHub with a
/// token), and a URL with a host is never given to a forge of another host:
/// its token would be sent there when pushing. A URL without a host (a local
/// path, `file://`) goes to the one configured forge; with both or neither
/// configured, or a host no forge serves, the answer is `None`.
pub fn pick(cfg: &ForgeConfig, git_url: &str) -> Option<ForgeKind> {
    let gitea = cfg.gitea_url.as_deref().map(host_of);
    let github = cfg.github_token.is_some();
    let Some(host) = host_of(git_url) else {
        return match (gitea.is_some(), github) {
            (true, false) => Some(ForgeKind::Gitea),
            (false, true) => Some(ForgeKind::GitHub),
            _ => None,
        };
    };
    if gitea.flatten().is_some_and(|g| g == host) {
        return Some(ForgeKind::Gitea);
    }
    let api = host_of(&cfg.github_api);
    let web = api.as_deref().map(|a| a.strip_prefix("api.").unwrap_or(a));
    let github_host = host == "github.com" || api.as_deref() == Some(&host) || web == Some(&host);
    (github && github_host).then_some(ForgeKind::GitHub)
}

/// `(authority, path)` of a URL with a scheme or of an scp-like
/// `user@host:path`; `None` for a local path.
fn split_url(url: &str) -> Option<(&str, &str)> {
    if let Some((_, rest)) = url.split_once("://") {
        let end = rest.find('/').unwrap_or(rest.len());
        return Some((&rest[..end], &rest[end..]));
    }
    // scp-like: a colon before the first slash, and not a Windows drive.
    let colon = url.find(':')?;
    if url[..colon].contains('/') || colon < 2 {
        return None;
    }
    Some((&url[..colon], &url[colon + 1..]))
}

/// The lower-cased host of a URL, without user or port.
fn host_of(url: &str) -> Option<String> {
    let (authority, _) = split_url(url)?;
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if host.is_empty() { None } else { Some(host.to_ascii_lowercase()) }
}

/// Opens a pull request from `pr.head` into `pr.base`.
///
/// Gitea: `POST <gitea_url>/api/v1/repos/{owner}/{repo}/pulls` with
/// `Authorization: token <t>`. GitHub: `POST <api>/repos/{owner}/{repo}/pulls`
/// with `Authorization: Bearer <t>`, `Accept: application/vnd.github+json`
/// and `X-GitHub-Api-Version`. Both take `{title, head, base, body}` and
/// answer 201 with `html_url` and `number`.
pub async fn open_pull_request(
    cfg: &ForgeConfig,
    kind: ForgeKind,
    pr: &PullRequest,
) -> Result<Opened, ForgeError> {
    let forge = kind.name();
    check_name("owner", &pr.owner)?;
    check_name("repository", &pr.repo)?;
    let (owner, repo) = (&pr.owner, &pr.repo);
    let client = reqwest::Client::builder()
        .user_agent(concat!("crafting-table/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ForgeError::Request { forge, message: chain(&e) })?;
    let body = json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body});

    let (endpoint, token, request) = match kind {
        ForgeKind::Gitea => {
            let base = cfg
                .gitea_url
                .as_deref()
                .ok_or(ForgeError::NotConfigured { forge, what: "no Gitea URL is set" })?;
            let token = cfg
                .gitea_token
                .as_deref()
                .ok_or(ForgeError::NotConfigured { forge, what: "no Gitea token is set" })?;
            let base = base.trim_end_matches('/');
            let endpoint = format!("{base}/api/v1/repos/{owner}/{repo}/pulls");
            let request = client
                .post(&endpoint)
                .header(reqwest::header::AUTHORIZATION, format!("token {token}"))
                .header(reqwest::header::ACCEPT, "application/json");
            (endpoint, token, request)
        }
        ForgeKind::GitHub => {
            let token = cfg
                .github_token
                .as_deref()
                .ok_or(ForgeError::NotConfigured { forge, what: "no GitHub token is set" })?;
            let api = cfg.github_api.trim_end_matches('/');
            let endpoint = format!("{api}/repos/{owner}/{repo}/pulls");
            let request = client
                .post(&endpoint)
                .bearer_auth(token)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", GITHUB_API_VERSION);
            (endpoint, token, request)
        }
    };

    let exchange = async {
        let mut response = request.json(&body).send().await?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_BODY_BYTES.saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok::<_, reqwest::Error>((status, bytes))
    };
    let secs = cfg.timeout.as_secs_f64().ceil() as u64;
    let (status, bytes) = tokio::time::timeout(cfg.timeout, exchange)
        .await
        .map_err(|_| ForgeError::Timeout { forge, secs })?
        .map_err(|e| {
            let message = mask(&chain(&e), Some(token));
            if e.is_timeout() {
                ForgeError::Timeout { forge, secs }
            } else if e.is_connect() || e.is_request() || e.is_body() {
                ForgeError::Connect { forge, endpoint: redact_credentials(&endpoint), message }
            } else {
                ForgeError::Request { forge, message }
            }
        })?;

    let text = String::from_utf8_lossy(&bytes);
    let quoted = || mask(&shorten(text.trim(), QUOTE_CHARS), Some(token));
    if !status.is_success() {
        return Err(ForgeError::Status { forge, status: status.as_u16(), body: quoted() });
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| ForgeError::BadResponse {
        forge,
        message: format!("the body is not JSON ({e}): {:?}", quoted()),
    })?;
    let url = value.get("html_url").and_then(Value::as_str);
    let number = value.get("number").and_then(Value::as_u64);
    match (url, number) {
        (Some(url), Some(number)) => Ok(Opened { url: url.to_owned(), number }),
        _ => Err(ForgeError::BadResponse {
            forge,
            message: format!("html_url or number is missing: {:?}", quoted()),
        }),
    }
}

/// Owner and repository names both forges allow, checked so that nothing
/// else can slip into the API path.
fn check_name(what: &'static str, value: &str) -> Result<(), ForgeError> {
    let ok = !value.is_empty()
        && value.len() <= 100
        && value != "."
        && value != ".."
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok { Ok(()) } else { Err(ForgeError::InvalidName { what, value: value.to_owned() }) }
}

/// Force-pushes `refs/heads/<branch>` of the bare clone at `clone` to the
/// same branch at `url`, over an anonymous remote. Blocking.
///
/// A token is given only when the remote asks for credentials, as the
/// password beside the user name the forge expects
/// ([`ForgeKind::push_username`]).
pub fn push_branch(
    clone: &Path,
    url: &str,
    branch: &str,
    forge: ForgeKind,
    token: Option<&str>,
) -> Result<(), ForgeError> {
    check_branch(branch)?;
    let action = "push";
    let repo = Repository::open(clone).map_err(|e| git_error(action, &e, token))?;
    let refname = format!("refs/heads/{branch}");
    if repo.find_reference(&refname).is_err() {
        return Err(ForgeError::NoBranch { branch: branch.to_owned() });
    }
    push(&repo, url, &format!("+{refname}:{refname}"), forge.push_username(), token, action)
}

/// Deletes `refs/heads/<branch>` at `url`. Blocking; credentials as for
/// [`push_branch`].
pub fn delete_remote_branch(
    clone: &Path,
    url: &str,
    branch: &str,
    forge: ForgeKind,
    token: Option<&str>,
) -> Result<(), ForgeError> {
    check_branch(branch)?;
    let action = "delete branch";
    let repo = Repository::open(clone).map_err(|e| git_error(action, &e, token))?;
    push(&repo, url, &format!(":refs/heads/{branch}"), forge.push_username(), token, action)
}

fn check_branch(branch: &str) -> Result<(), ForgeError> {
    crate::validate::git_ref(branch).map_err(|_| ForgeError::InvalidBranch(branch.to_owned()))
}

/// Pushes one refspec and reports a reference the remote refused.
fn push(
    repo: &Repository,
    url: &str,
    refspec: &str,
    username: &str,
    token: Option<&str>,
    action: &'static str,
) -> Result<(), ForgeError> {
    // libgit2 calls a missing local path an "unsupported URL protocol".
    if split_url(url).is_none() || url.starts_with("file://") {
        let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
        if !path.exists() {
            let message = format!("there is no repository at {}", path.display());
            return Err(ForgeError::Git { action, message });
        }
    }
    let mut remote = repo.remote_anonymous(url).map_err(|e| git_error(action, &e, token))?;
    let refused: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    let asked = Cell::new(0u32);
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(|_url, _user, allowed| {
        asked.set(asked.get() + 1);
        let Some(token) = token else {
            return Err(git2::Error::from_str(
                "the remote asks for credentials and no token is configured",
            ));
        };
        if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            return Err(git2::Error::from_str(
                "the remote asks for credentials other than a user name and token; \
                 pushes go over https with a token",
            ));
        }
        // libgit2 asks again after a refusal; a second answer would be the same.
        if asked.get() > 1 {
            return Err(git2::Error::from_str("the remote refused the token"));
        }
        Cred::userpass_plaintext(username, token)
    });
    callbacks.push_update_reference(|refname, status| {
        if let Some(message) = status {
            refused.borrow_mut().push((refname.to_owned(), message.to_owned()));
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    remote.push(&[refspec], Some(&mut options)).map_err(|e| git_error(action, &e, token))?;
    drop(options);
    match refused.into_inner().into_iter().next() {
        Some((refname, message)) => {
            Err(ForgeError::Rejected { refname, message: mask(&message, token) })
        }
        None => Ok(()),
    }
}

fn git_error(action: &'static str, e: &git2::Error, token: Option<&str>) -> ForgeError {
    ForgeError::Git { action, message: mask(e.message(), token) }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};
    use std::time::Instant;

    use git2::{Oid, Signature};

    use super::super::agent::test_http::{self, Answer, Seen, Server};
    use super::*;

    const TOKEN: &str = "tok-5e1f-secret";

    fn gitea(server: &Server) -> ForgeConfig {
        ForgeConfig {
            gitea_url: Some(format!("{}/", server.base)),
            gitea_token: Some(TOKEN.into()),
            timeout: Duration::from_secs(5),
            ..ForgeConfig::default()
        }
    }

    fn github(server: &Server) -> ForgeConfig {
        ForgeConfig {
            github_token: Some(TOKEN.into()),
            github_api: server.base.clone(),
            timeout: Duration::from_secs(5),
            ..ForgeConfig::default()
        }
    }

    fn pr() -> PullRequest {
        PullRequest {
            owner: "acme".into(),
            repo: "widget".into(),
            head: "crafting/fix-needless-return".into(),
            base: "main".into(),
            title: "Fix clippy::needless_return in src/lib.rs".into(),
            body: "Proposed by crafting-table.\n\n```diff\n-return 1;\n+1\n```".into(),
        }
    }

    /// Why the body is not exactly `{title, head, base, body}` with `pr()`'s
    /// values, if it is not.
    fn body_problem(seen: &Seen) -> Option<String> {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&seen.body) else {
            return Some("the body is not a JSON object".into());
        };
        let want = pr();
        let expected =
            [("title", want.title), ("head", want.head), ("base", want.base), ("body", want.body)];
        if body.len() != expected.len() {
            let keys: Vec<_> = body.keys().collect();
            return Some(format!("unexpected fields: {keys:?}"));
        }
        for (key, value) in expected {
            if body.get(key).and_then(Value::as_str) != Some(value.as_str()) {
                return Some(format!("{key} is missing, not a string or wrong"));
            }
        }
        None
    }

    fn created(html_url: &str, number: u64, extra: Value) -> Answer {
        let mut value = json!({
            "id": 9001,
            "url": html_url,
            "number": number,
            "state": "open",
            "title": pr().title,
            "body": pr().body,
            "html_url": html_url,
            "diff_url": format!("{html_url}.diff"),
            "patch_url": format!("{html_url}.patch"),
            "user": {"id": 3, "login": "crafting-table"},
            "labels": [],
            "milestone": null,
            "assignee": null,
            "assignees": [],
            "merged": false,
            "base": {"label": "main", "ref": "main", "sha": "1111111111111111111111111111111111111111"},
            "head": {"label": pr().head, "ref": pr().head, "sha": "2222222222222222222222222222222222222222"},
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
        });
        if let (Value::Object(v), Value::Object(extra)) = (&mut value, extra) {
            v.extend(extra);
        }
        test_http::json(201, value)
    }

    #[test]
    fn owner_and_repository_come_from_the_last_two_segments() {
        let cases = [
            ("https://gitea.example.org/acme/widget.git", Some(("acme", "widget"))),
            ("https://gitea.example.org/acme/widget", Some(("acme", "widget"))),
            ("https://gitea.example.org/acme/widget/", Some(("acme", "widget"))),
            (
                "https://user:pw@gitea.example.org:8443/sub/acme/widget.git",
                Some(("acme", "widget")),
            ),
            ("https://github.com/acme/widget.git?x=1#frag", Some(("acme", "widget"))),
            ("ssh://git@gitea.example.org:2222/acme/widget.git", Some(("acme", "widget"))),
            ("git@github.com:acme/widget.git", Some(("acme", "widget"))),
            ("/srv/git/acme/widget.git", Some(("acme", "widget"))),
            ("file:///srv/git/acme/widget", Some(("acme", "widget"))),
            ("/srv/git/acme/widget.git/", Some(("acme", "widget"))),
            ("https://gitea.example.org/widget.git", None),
            ("https://gitea.example.org/", None),
            ("widget", None),
            ("", None),
        ];
        for (url, want) in cases {
            let want = want.map(|(o, r)| (o.to_owned(), r.to_owned()));
            assert_eq!(repo_of(url), want, "{url}");
        }
    }

    #[test]
    fn the_forge_is_picked_by_host_then_by_what_is_configured() {
        let both = ForgeConfig {
            gitea_url: Some("https://Gitea.Example.org:3000".into()),
            gitea_token: Some("g".into()),
            github_token: Some("h".into()),
            ..ForgeConfig::default()
        };
        let enterprise = ForgeConfig {
            github_token: Some("h".into()),
            github_api: "https://ghe.acme.internal/api/v3".into(),
            ..ForgeConfig::default()
        };
        let cloud = ForgeConfig {
            github_token: Some("h".into()),
            github_api: "https://api.acme.ghe.com".into(),
            ..ForgeConfig::default()
        };
        let gitea_only = ForgeConfig {
            gitea_url: Some("http://127.0.0.1:3000".into()),
            ..ForgeConfig::default()
        };
        let github_only = ForgeConfig { github_token: Some("h".into()), ..ForgeConfig::default() };
        let none = ForgeConfig::default();
        let cases = [
            (&both, "https://gitea.example.org/acme/widget.git", Some(ForgeKind::Gitea)),
            (&both, "ssh://git@gitea.example.org:2222/acme/widget.git", Some(ForgeKind::Gitea)),
            (&both, "git@gitea.example.org:acme/widget.git", Some(ForgeKind::Gitea)),
            (&both, "https://github.com/acme/widget.git", Some(ForgeKind::GitHub)),
            (&both, "git@github.com:acme/widget.git", Some(ForgeKind::GitHub)),
            (&both, "/srv/git/acme/widget.git", None),
            (&both, "https://gitlab.example.org/acme/widget.git", None),
            (&enterprise, "https://ghe.acme.internal/acme/widget.git", Some(ForgeKind::GitHub)),
            (&cloud, "https://acme.ghe.com/acme/widget.git", Some(ForgeKind::GitHub)),
            (&gitea_only, "/srv/git/acme/widget.git", Some(ForgeKind::Gitea)),
            (&gitea_only, "http://127.0.0.1:3000/acme/widget.git", Some(ForgeKind::Gitea)),
            // A host no configured forge serves never gets a token.
            (&gitea_only, "https://github.com/acme/widget.git", None),
            (&gitea_only, "http://localhost:3000/acme/widget.git", None),
            (&gitea_only, "https://evil.example/acme/widget.git", None),
            (&github_only, "https://gitea.example.org/acme/widget.git", None),
            (&github_only, "file:///srv/git/acme/widget", Some(ForgeKind::GitHub)),
            (&none, "/srv/git/acme/widget.git", None),
            (&none, "https://github.com/acme/widget.git", None),
        ];
        for (cfg, url, want) in cases {
            assert_eq!(pick(cfg, url), want, "{url} with {cfg:?}");
        }
    }

    #[test]
    fn debug_hides_the_tokens() {
        let cfg = ForgeConfig {
            gitea_url: Some("https://gitea.example.org".into()),
            gitea_token: Some("gitea-secret-1".into()),
            github_token: Some("github-secret-2".into()),
            ..ForgeConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("gitea.example.org"), "{shown}");
    }

    #[tokio::test]
    async fn gitea_pull_requests_follow_its_api() {
        let server = Server::start(|seen, _| {
            let problem = if seen.method != "POST" {
                Some(format!("method {}", seen.method))
            } else if seen.path != "/api/v1/repos/acme/widget/pulls" {
                Some(format!("path {}", seen.path))
            } else if seen.header("authorization") != Some(&format!("token {TOKEN}")) {
                Some("authorization".to_owned())
            } else if seen.header("content-type") != Some("application/json") {
                Some("content-type".to_owned())
            } else {
                body_problem(seen)
            };
            match problem {
                Some(p) => test_http::json(422, json!({"message": p})),
                None => created("http://gitea.example.invalid/acme/widget/pulls/7", 7, json!({})),
            }
        });
        let opened = open_pull_request(&gitea(&server), ForgeKind::Gitea, &pr()).await.unwrap();
        assert_eq!(
            opened,
            Opened { url: "http://gitea.example.invalid/acme/widget/pulls/7".into(), number: 7 }
        );
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test]
    async fn github_pull_requests_follow_its_api() {
        let server = Server::start(|seen, _| {
            let problem = if seen.method != "POST" {
                Some(format!("method {}", seen.method))
            } else if seen.path != "/repos/acme/widget/pulls" {
                Some(format!("path {}", seen.path))
            } else if seen.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                Some("authorization".to_owned())
            } else if seen.header("accept") != Some("application/vnd.github+json") {
                Some("accept".to_owned())
            } else if seen.header("x-github-api-version") != Some("2022-11-28") {
                Some("api version".to_owned())
            } else if seen.header("user-agent").is_none_or(str::is_empty) {
                Some("user-agent".to_owned())
            } else if seen.header("content-type") != Some("application/json") {
                Some("content-type".to_owned())
            } else {
                body_problem(seen)
            };
            match problem {
                Some(p) => test_http::json(422, json!({"message": "Validation Failed", "why": p})),
                None => created(
                    "https://github.example.invalid/acme/widget/pull/1347",
                    1347,
                    json!({"node_id": "PR_1", "draft": false, "maintainer_can_modify": false}),
                ),
            }
        });
        let opened = open_pull_request(&github(&server), ForgeKind::GitHub, &pr()).await.unwrap();
        assert_eq!(opened.number, 1347);
        assert_eq!(opened.url, "https://github.example.invalid/acme/widget/pull/1347");
    }

    #[tokio::test]
    async fn a_failed_request_names_the_forge_and_status_but_not_the_token() {
        // The server echoes the authorization header back, as a careless proxy might.
        let server = Server::start(|seen, _| {
            let auth = seen.header("authorization").unwrap_or_default().to_owned();
            test_http::text(500, &format!("internal error handling {auth}"))
        });
        for (cfg, kind) in
            [(gitea(&server), ForgeKind::Gitea), (github(&server), ForgeKind::GitHub)]
        {
            let err = open_pull_request(&cfg, kind, &pr()).await.unwrap_err();
            assert!(matches!(err, ForgeError::Status { status: 500, .. }), "{err:?}");
            let shown = err.to_string();
            assert!(shown.starts_with(kind.name()) && shown.contains("500"), "{shown}");
            assert!(shown.contains("internal error"), "{shown}");
            for text in [shown, format!("{err:?}")] {
                assert!(!text.contains(TOKEN), "{text}");
            }
        }
    }

    #[tokio::test]
    async fn a_rejected_pull_request_quotes_the_forge() {
        let server = Server::start(|_, _| {
            test_http::json(
                422,
                json!({"message": "Validation Failed", "errors": [{"message": "A pull request already exists for acme:crafting/fix."}]}),
            )
        });
        let err = open_pull_request(&github(&server), ForgeKind::GitHub, &pr()).await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_forge_times_out_within_the_timeout() {
        let server = Server::start(|_, _| Answer::Silence(Duration::from_secs(10)));
        let cfg = ForgeConfig { timeout: Duration::from_millis(300), ..gitea(&server) };
        let started = Instant::now();
        let err = open_pull_request(&cfg, ForgeKind::Gitea, &pr()).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(matches!(err, ForgeError::Timeout { forge: "Gitea", secs: 1 }), "{err:?}");
        assert_eq!(err.to_string(), "the Gitea forge did not answer within 1 s");
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = ForgeConfig {
            github_token: Some(TOKEN.into()),
            github_api: format!("http://127.0.0.1:{port}"),
            ..ForgeConfig::default()
        };
        let err = open_pull_request(&cfg, ForgeKind::GitHub, &pr()).await.unwrap_err();
        assert!(matches!(err, ForgeError::Connect { forge: "GitHub", .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    }

    #[tokio::test]
    async fn answers_that_are_not_pull_requests_are_refused() {
        let server = Server::start(|_, i| match i {
            0 => test_http::json(201, json!({"number": 3})),
            _ => test_http::text(201, "created"),
        });
        for _ in 0..2 {
            let err =
                open_pull_request(&gitea(&server), ForgeKind::Gitea, &pr()).await.unwrap_err();
            assert!(matches!(err, ForgeError::BadResponse { .. }), "{err:?}");
        }
    }

    #[tokio::test]
    async fn missing_settings_and_bad_names_are_refused_before_any_request() {
        let err = open_pull_request(&ForgeConfig::default(), ForgeKind::Gitea, &pr()).await;
        assert!(matches!(err, Err(ForgeError::NotConfigured { forge: "Gitea", .. })), "{err:?}");
        let err = open_pull_request(&ForgeConfig::default(), ForgeKind::GitHub, &pr()).await;
        assert!(matches!(err, Err(ForgeError::NotConfigured { forge: "GitHub", .. })), "{err:?}");
        let cfg = ForgeConfig { github_token: Some(TOKEN.into()), ..ForgeConfig::default() };
        for (owner, repo) in [("..", "widget"), ("acme", "a/b"), ("", "widget"), ("acme", "w?x")] {
            let bad = PullRequest { owner: owner.into(), repo: repo.into(), ..pr() };
            let err = open_pull_request(&cfg, ForgeKind::GitHub, &bad).await;
            assert!(matches!(err, Err(ForgeError::InvalidName { .. })), "{owner}/{repo}: {err:?}");
        }
    }

    /// A commit holding one file on `refs/heads/<branch>`, with the branch's
    /// current commit as parent when `on_top`.
    fn commit(repo: &Repository, branch: &str, content: &str, on_top: bool) -> Oid {
        let blob = repo.blob(content.as_bytes()).unwrap();
        let mut tree = repo.treebuilder(None).unwrap();
        tree.insert("lib.rs", blob, 0o100644).unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let sig = Signature::now("crafting-table", "dev@crafting-table.invalid").unwrap();
        let refname = format!("refs/heads/{branch}");
        let parent =
            on_top.then(|| repo.find_reference(&refname).ok()?.peel_to_commit().ok()).flatten();
        let parents: Vec<_> = parent.iter().collect();
        let oid = repo.commit(None, &sig, &sig, content, &tree, &parents).unwrap();
        repo.reference(&refname, oid, true, "test").unwrap();
        oid
    }

    fn remote_head(remote: &Path, branch: &str) -> Option<Oid> {
        let repo = Repository::open_bare(remote).unwrap();
        repo.find_reference(&format!("refs/heads/{branch}")).ok().and_then(|r| r.target())
    }

    #[test]
    fn a_branch_is_pushed_forced_over_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let clone_path = dir.path().join("clone");
        let remote = dir.path().join("remote.git");
        let clone = Repository::init_bare(&clone_path).unwrap();
        Repository::init_bare(&remote).unwrap();
        let url = remote.display().to_string();

        let first = commit(&clone, "crafting/fix", "fn a() { 1 }\n", false);
        push_branch(&clone_path, &url, "crafting/fix", ForgeKind::Gitea, Some(TOKEN)).unwrap();
        assert_eq!(remote_head(&remote, "crafting/fix"), Some(first));
        let pushed = Repository::open_bare(&remote).unwrap();
        assert!(pushed.find_commit(first).is_ok());

        // A commit that does not descend from the first: only a force push lands it.
        let second = commit(&clone, "crafting/fix", "fn a() { 2 }\n", false);
        push_branch(&clone_path, &url, "crafting/fix", ForgeKind::Gitea, None).unwrap();
        assert_eq!(remote_head(&remote, "crafting/fix"), Some(second));

        // Nothing about the remote or the token was written to the clone.
        let config = std::fs::read_to_string(clone_path.join("config")).unwrap();
        assert!(!config.contains("remote") && !config.contains(TOKEN), "{config}");

        delete_remote_branch(&clone_path, &url, "crafting/fix", ForgeKind::Gitea, None).unwrap();
        assert_eq!(remote_head(&remote, "crafting/fix"), None);
        // The local branch is untouched.
        assert_eq!(clone.find_reference("refs/heads/crafting/fix").unwrap().target(), Some(second));
    }

    #[test]
    fn deleting_a_branch_the_remote_lacks_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let clone_path = dir.path().join("clone");
        let remote = dir.path().join("remote.git");
        Repository::init_bare(&clone_path).unwrap();
        Repository::init_bare(&remote).unwrap();
        let url = remote.display().to_string();
        delete_remote_branch(&clone_path, &url, "never-pushed", ForgeKind::Gitea, None).unwrap();
    }

    #[test]
    fn pushing_to_a_missing_repository_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let clone_path = dir.path().join("clone");
        let clone = Repository::init_bare(&clone_path).unwrap();
        commit(&clone, "fix", "x\n", false);
        let missing = dir.path().join("no/such/repo.git");
        let err = push_branch(
            &clone_path,
            &missing.display().to_string(),
            "fix",
            ForgeKind::Gitea,
            Some(TOKEN),
        )
        .unwrap_err();
        assert!(matches!(err, ForgeError::Git { action: "push", .. }), "{err:?}");
        let shown = err.to_string();
        assert!(shown.starts_with("git push failed: there is no repository at "), "{shown}");
        assert!(shown.contains("no/such/repo.git"), "{shown}");
        let file_url = format!("file://{}", missing.display());
        let err = push_branch(&clone_path, &file_url, "fix", ForgeKind::Gitea, None).unwrap_err();
        assert!(err.to_string().contains("there is no repository at"), "{err}");
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    #[test]
    fn a_missing_or_malformed_branch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let clone_path = dir.path().join("clone");
        Repository::init_bare(&clone_path).unwrap();
        let url = dir.path().join("remote.git").display().to_string();
        let err = push_branch(&clone_path, &url, "absent", ForgeKind::Gitea, None).unwrap_err();
        assert!(matches!(err, ForgeError::NoBranch { .. }), "{err:?}");
        for bad in ["-x", "a..b", "a b", "x.lock", ""] {
            let err = push_branch(&clone_path, &url, bad, ForgeKind::Gitea, None).unwrap_err();
            assert!(matches!(err, ForgeError::InvalidBranch(_)), "{bad}: {err:?}");
        }
        let err = push_branch(&dir.path().join("nothing"), &url, "fix", ForgeKind::Gitea, None)
            .unwrap_err();
        assert!(matches!(err, ForgeError::Git { .. }), "{err:?}");
    }

    /// Base64 of `text`, to compare Basic credentials.
    fn base64(text: &str) -> String {
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn the_token_goes_only_through_the_credential_callback() {
        // An HTTP remote that wants credentials and refuses every one it gets.
        let server = Server::start(|_, _| test_http::Answer::Reply {
            status: 401,
            headers: vec![("WWW-Authenticate".into(), "Basic realm=\"forge\"".into())],
            body: "no".into(),
        });
        let dir = tempfile::tempdir().unwrap();
        let clone_path = dir.path().join("clone");
        let clone = Repository::init_bare(&clone_path).unwrap();
        commit(&clone, "fix", "x\n", false);
        let url = format!("{}/acme/widget.git", server.base);

        let err = push_branch(&clone_path, &url, "fix", ForgeKind::Gitea, Some(TOKEN)).unwrap_err();
        assert!(matches!(err, ForgeError::Git { action: "push", .. }), "{err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(TOKEN), "{shown}");
        }
        let seen = server.seen();
        assert!(seen.len() >= 2, "{seen:?}");
        assert!(seen.iter().all(|s| !s.path.contains(TOKEN)));
        assert_eq!(seen[0].header("authorization"), None);
        let basic = format!("Basic {}", base64(&format!("crafting-table:{TOKEN}")));
        assert_eq!(seen[1].header("authorization"), Some(basic.as_str()));
        // Asked once, answered once: no loop of refused tokens.
        assert_eq!(seen.iter().filter(|s| s.header("authorization").is_some()).count(), 1);

        let err = push_branch(&clone_path, &url, "fix", ForgeKind::GitHub, Some(TOKEN));
        assert!(err.is_err());
        let basic = format!("Basic {}", base64(&format!("x-access-token:{TOKEN}")));
        assert!(server.seen().iter().any(|s| s.header("authorization") == Some(basic.as_str())));

        let err =
            delete_remote_branch(&clone_path, &url, "fix", ForgeKind::Gitea, None).unwrap_err();
        assert!(err.to_string().contains("no token is configured"), "{err}");
    }

    /// A `git daemon` on 127.0.0.1 serving `root`, stopped on drop.
    struct Daemon(Child);

    impl Drop for Daemon {
        fn drop(&mut self) {
            // SAFETY: killpg(2) has no memory-safety preconditions.
            unsafe { libc::killpg(self.0.id() as i32, libc::SIGKILL) };
            let _ = self.0.wait();
        }
    }

    fn daemon(root: &Path) -> (Daemon, u16) {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg(root)
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git daemon starts");
        let daemon = Daemon(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        (daemon, port)
    }

    #[test]
    fn a_reference_the_server_refuses_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("served");
        let remote = root.join("acme/widget.git");
        Repository::init_bare(&remote).unwrap();
        let hook = remote.join("hooks/pre-receive");
        std::fs::write(&hook, "#!/bin/sh\necho 'fix branches are not allowed here' >&2\nexit 1\n")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let clone_path = dir.path().join("clone");
        let clone = Repository::init_bare(&clone_path).unwrap();
        commit(&clone, "crafting/fix", "x\n", false);

        let (_daemon, port) = daemon(&root);
        let url = format!("git://127.0.0.1:{port}/acme/widget.git");
        let err =
            push_branch(&clone_path, &url, "crafting/fix", ForgeKind::Gitea, None).unwrap_err();
        let ForgeError::Rejected { ref refname, ref message } = err else { panic!("{err:?}") };
        assert_eq!(refname, "refs/heads/crafting/fix");
        assert!(message.contains("hook declined"), "{message}");
        assert_eq!(remote_head(&remote, "crafting/fix"), None);
    }
}
