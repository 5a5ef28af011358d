//! The patch loop's configuration, read from `CRAFTING_AGENT_*`,
//! `CRAFTING_GITEA_*`, `CRAFTING_GITHUB_*` and `CRAFTING_PATCHER_*`.
//!
//! A half-given group (a Gitea URL without its token, an `openai` agent
//! without a model) stops start-up with the missing variable named; a forge
//! that is not configured at all leaves the patch loop off, and its routes
//! answer 503 saying what to set.

use std::time::Duration;

use super::agent::{AgentConfig, AgentKind};
use super::diff::DEFAULT_MAX_DIFF_BYTES;
use super::forge::ForgeConfig;
use crate::error::{Error, Result};

/// Default branch prefix of fixes.
pub const DEFAULT_BRANCH_PREFIX: &str = "crafting-table/auto/";

/// Everything the patcher needs.
#[derive(Debug, Clone)]
pub struct PatcherConfig {
    /// The agent asked for diffs when a finding carries no tool fix; none
    /// means only tools' own fixes are used.
    pub agent: Option<AgentConfig>,
    /// Where pull requests are opened.
    pub forge: ForgeConfig,
    /// Fix branches are `<prefix><job_id>-<finding_id>`
    /// (`CRAFTING_PATCHER_BRANCH_PREFIX`, `crafting-table/auto/`).
    pub branch_prefix: String,
    /// Most attempts per finding identity (`CRAFTING_PATCHER_MAX_ATTEMPTS`, 3).
    pub max_attempts: u32,
    /// Commit author name (`CRAFTING_PATCHER_AUTHOR`, `Name <email>`).
    pub author_name: String,
    /// Commit author address.
    pub author_email: String,
    /// Largest diff accepted, in bytes (`CRAFTING_PATCHER_MAX_DIFF_BYTES`, 1 MiB).
    pub max_diff_bytes: usize,
    /// Lines of context on each side of the finding given to the agent (20).
    pub context_lines: u32,
}

impl Default for PatcherConfig {
    fn default() -> Self {
        PatcherConfig {
            agent: None,
            forge: ForgeConfig::default(),
            branch_prefix: DEFAULT_BRANCH_PREFIX.to_owned(),
            max_attempts: 3,
            author_name: "crafting-table".to_owned(),
            author_email: "crafting-table@localhost".to_owned(),
            max_diff_bytes: DEFAULT_MAX_DIFF_BYTES,
            context_lines: 20,
        }
    }
}

impl PatcherConfig {
    /// Reads the variables through `get` (empty values count as unset).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<PatcherConfig> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut c = PatcherConfig::default();
        c.forge.gitea_url = get("CRAFTING_GITEA_URL").map(|u| u.trim_end_matches('/').to_owned());
        c.forge.gitea_token = get("CRAFTING_GITEA_TOKEN");
        c.forge.github_token = get("CRAFTING_GITHUB_TOKEN");
        if let Some(api) = get("CRAFTING_GITHUB_API_URL") {
            c.forge.github_api = api.trim_end_matches('/').to_owned();
        }
        if let Some(v) = get("CRAFTING_FORGE_TIMEOUT_SECS") {
            c.forge.timeout =
                Duration::from_secs(within("CRAFTING_FORGE_TIMEOUT_SECS", &v, 1, 3600)?);
        }
        match (&c.forge.gitea_url, &c.forge.gitea_token) {
            (Some(_), None) => return Err(missing("CRAFTING_GITEA_TOKEN", "CRAFTING_GITEA_URL")),
            (None, Some(_)) => return Err(missing("CRAFTING_GITEA_URL", "CRAFTING_GITEA_TOKEN")),
            _ => {}
        }
        for (var, url) in [
            ("CRAFTING_GITEA_URL", c.forge.gitea_url.as_deref()),
            ("CRAFTING_GITHUB_API_URL", Some(c.forge.github_api.as_str())),
        ] {
            if let Some(url) = url {
                check_http_url(var, url)?;
            }
        }
        c.agent = agent_from(&get)?;
        if let Some(v) = get("CRAFTING_PATCHER_BRANCH_PREFIX") {
            crate::validate::git_ref(&format!("{v}x")).map_err(|_| {
                Error::invalid(
                    "invalid_config",
                    format!(
                        "CRAFTING_PATCHER_BRANCH_PREFIX={v:?} cannot start a git branch name; use \
                         letters, digits, `-`, `_`, `.` and `/`, e.g. crafting-table/auto/"
                    ),
                )
            })?;
            c.branch_prefix = v;
        }
        if let Some(v) = get("CRAFTING_PATCHER_MAX_ATTEMPTS") {
            c.max_attempts = within("CRAFTING_PATCHER_MAX_ATTEMPTS", &v, 1, 100)? as u32;
        }
        if let Some(v) = get("CRAFTING_PATCHER_MAX_DIFF_BYTES") {
            c.max_diff_bytes =
                within("CRAFTING_PATCHER_MAX_DIFF_BYTES", &v, 1, 64 * 1024 * 1024)? as usize;
        }
        if let Some(v) = get("CRAFTING_PATCHER_AUTHOR") {
            (c.author_name, c.author_email) = author(&v)?;
        }
        Ok(c)
    }

    /// True when pull requests can be opened: a forge is configured.
    pub fn enabled(&self) -> bool {
        self.forge.gitea_token.is_some() || self.forge.github_token.is_some()
    }

    /// The sentence the routes answer with while the patch loop is off.
    pub fn off_message(&self) -> String {
        "The patch loop is off: it needs a forge to open pull requests. Set CRAFTING_GITEA_URL \
         and CRAFTING_GITEA_TOKEN (Gitea or Forgejo) or CRAFTING_GITHUB_TOKEN (GitHub; \
         CRAFTING_GITHUB_API_URL for GitHub Enterprise), and CRAFTING_AGENT_KIND for findings \
         without a tool fix, then restart the service."
            .to_owned()
    }

    /// Every secret of the configuration, for scrubbing text shown to users.
    pub fn secrets(&self) -> Vec<String> {
        [&self.forge.gitea_token, &self.forge.github_token]
            .into_iter()
            .chain(self.agent.as_ref().map(|a| &a.token))
            .flatten()
            .filter(|s| s.len() >= 4)
            .cloned()
            .collect()
    }
}

/// The agent settings, when `CRAFTING_AGENT_KIND` is set.
fn agent_from(get: &impl Fn(&str) -> Option<String>) -> Result<Option<AgentConfig>> {
    let Some(kind) = get("CRAFTING_AGENT_KIND") else {
        for var in ["CRAFTING_AGENT_URL", "CRAFTING_AGENT_COMMAND", "CRAFTING_AGENT_MODEL"] {
            if get(var).is_some() {
                return Err(missing("CRAFTING_AGENT_KIND", var));
            }
        }
        return Ok(None);
    };
    let kind = AgentKind::parse(&kind.to_ascii_lowercase()).ok_or_else(|| {
        Error::invalid(
            "invalid_config",
            format!("CRAFTING_AGENT_KIND={kind:?} is not openai, anthropic or command"),
        )
    })?;
    let mut a = AgentConfig {
        url: get("CRAFTING_AGENT_URL").map(|u| u.trim_end_matches('/').to_owned()),
        token: get("CRAFTING_AGENT_TOKEN"),
        model: get("CRAFTING_AGENT_MODEL"),
        command: get("CRAFTING_AGENT_COMMAND"),
        ..AgentConfig::new(kind)
    };
    if let Some(v) = get("CRAFTING_AGENT_TIMEOUT_SECS") {
        a.timeout = Duration::from_secs(within("CRAFTING_AGENT_TIMEOUT_SECS", &v, 1, 3600)?);
    }
    if let Some(v) = get("CRAFTING_AGENT_RETRIES") {
        a.retries = within("CRAFTING_AGENT_RETRIES", &v, 0, 10)? as u32;
    }
    match kind {
        AgentKind::Command if a.command.is_none() => {
            return Err(missing("CRAFTING_AGENT_COMMAND", "CRAFTING_AGENT_KIND=command"));
        }
        AgentKind::OpenAi | AgentKind::Anthropic if a.model.is_none() => {
            return Err(missing("CRAFTING_AGENT_MODEL", "an openai or anthropic agent"));
        }
        AgentKind::Anthropic if a.token.is_none() => {
            return Err(missing("CRAFTING_AGENT_TOKEN", "CRAFTING_AGENT_KIND=anthropic"));
        }
        _ => {}
    }
    if let Some(url) = &a.url {
        check_http_url("CRAFTING_AGENT_URL", url)?;
    }
    Ok(Some(a))
}

fn missing(var: &str, because: &str) -> Error {
    Error::invalid("invalid_config", format!("{var} must be set when {because} is"))
}

fn check_http_url(var: &str, url: &str) -> Result<()> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_config",
            format!(
                "{var}={:?} is not an http(s) address without credentials, e.g. \
                 https://git.example.org",
                crate::validate::redact_credentials(url)
            ),
        ))
    }
}

/// Splits `Name <email>`.
fn author(v: &str) -> Result<(String, String)> {
    let bad = || {
        Error::invalid(
            "invalid_config",
            format!("CRAFTING_PATCHER_AUTHOR={v:?} is not `Name <email>`"),
        )
    };
    let (name, rest) = v.split_once('<').ok_or_else(bad)?;
    let email = rest.strip_suffix('>').ok_or_else(bad)?.trim();
    let name = name.trim();
    if name.is_empty() || !email.contains('@') || email.contains(['<', '>', '\n']) {
        return Err(bad());
    }
    Ok((name.to_owned(), email.to_owned()))
}

/// A whole number from `low` to `high`, or an error naming the variable and the range.
fn within(var: &str, v: &str, low: u64, high: u64) -> Result<u64> {
    match v.parse::<u64>() {
        Ok(n) if (low..=high).contains(&n) => Ok(n),
        _ => Err(Error::invalid(
            "invalid_config",
            format!("{var}={v:?} must be a whole number from {low} to {high}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<PatcherConfig> {
        PatcherConfig::from_vars(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn off_without_a_forge() {
        let c = read(&[]).unwrap();
        assert!(!c.enabled());
        assert!(c.agent.is_none());
        assert!(c.off_message().contains("CRAFTING_GITEA_TOKEN"));
        assert!(c.off_message().contains("CRAFTING_GITHUB_TOKEN"));
    }

    #[test]
    fn half_given_groups_are_named() {
        let e = read(&[("CRAFTING_GITEA_URL", "http://127.0.0.1:3000")]).unwrap_err();
        assert!(e.to_string().contains("CRAFTING_GITEA_TOKEN"), "{e}");
        let e = read(&[("CRAFTING_AGENT_KIND", "command")]).unwrap_err();
        assert!(e.to_string().contains("CRAFTING_AGENT_COMMAND"), "{e}");
        let e = read(&[("CRAFTING_AGENT_KIND", "openai"), ("CRAFTING_AGENT_URL", "http://x")])
            .unwrap_err();
        assert!(e.to_string().contains("CRAFTING_AGENT_MODEL"), "{e}");
        let e = read(&[("CRAFTING_AGENT_KIND", "llama")]).unwrap_err();
        assert!(e.to_string().contains("openai, anthropic or command"), "{e}");
        let e = read(&[("CRAFTING_AGENT_COMMAND", "fix.sh")]).unwrap_err();
        assert!(e.to_string().contains("CRAFTING_AGENT_KIND"), "{e}");
        for (var, bad) in [
            ("CRAFTING_PATCHER_MAX_ATTEMPTS", "0"),
            ("CRAFTING_PATCHER_MAX_ATTEMPTS", "1000"),
            ("CRAFTING_PATCHER_MAX_DIFF_BYTES", "0"),
            ("CRAFTING_FORGE_TIMEOUT_SECS", "ten"),
        ] {
            let e = read(&[(var, bad)]).unwrap_err();
            assert!(e.to_string().contains(var) && e.to_string().contains("from"), "{e}");
        }
        let e = read(&[("CRAFTING_PATCHER_AUTHOR", "bot")]).unwrap_err();
        assert!(e.to_string().contains("Name <email>"), "{e}");
        let e = read(&[("CRAFTING_PATCHER_BRANCH_PREFIX", "bad..prefix/")]).unwrap_err();
        assert!(e.to_string().contains("BRANCH_PREFIX"), "{e}");
    }

    #[test]
    fn a_full_configuration() {
        let c = read(&[
            ("CRAFTING_GITEA_URL", "http://127.0.0.1:3000/"),
            ("CRAFTING_GITEA_TOKEN", "gitea-secret"),
            ("CRAFTING_AGENT_KIND", "command"),
            ("CRAFTING_AGENT_COMMAND", "/opt/fix --json"),
            ("CRAFTING_PATCHER_AUTHOR", "Fix Bot <fix@example.org>"),
            ("CRAFTING_PATCHER_MAX_ATTEMPTS", "5"),
        ])
        .unwrap();
        assert!(c.enabled());
        assert_eq!(c.forge.gitea_url.as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(c.agent.as_ref().map(|a| a.kind), Some(AgentKind::Command));
        assert_eq!(
            (c.author_name.as_str(), c.author_email.as_str()),
            ("Fix Bot", "fix@example.org")
        );
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.secrets(), vec!["gitea-secret".to_owned()]);
        assert!(!format!("{c:?}").contains("gitea-secret"), "Debug shows no token");
    }
}
