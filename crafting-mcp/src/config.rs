//! Settings read from the environment at startup.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

/// Variable naming the API's base URL.
pub const BASE_URL_VAR: &str = "CRAFTING_TABLE_BASE_URL";
/// Variable holding the bearer token.
pub const TOKEN_VAR: &str = "CRAFTING_TABLE_TOKEN";
/// Variable with the per-request HTTP timeout in seconds.
pub const TIMEOUT_VAR: &str = "CRAFTING_TABLE_HTTP_TIMEOUT_SECS";
/// Where `crafting-table serve` listens by default.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8810";
/// Per-request timeout when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A bearer token. It has no `Display`, and its `Debug` hides the secret, so
/// it cannot end up in a log line or a tool result by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer(String);

impl Bearer {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Bearer(token.into())
    }

    /// The secret, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

/// What the server needs to reach the API.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the HTTP API, without credentials.
    pub base_url: Url,
    /// The caller's bearer token.
    pub token: Bearer,
    /// Timeout of each HTTP request.
    pub request_timeout: Duration,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// No token in the environment.
    #[error(
        "{TOKEN_VAR} is not set; set it to a bearer token of the crafting-table service \
         (an administrator mints one with POST /admin/tokens; the first admin bearer is in \
         <data dir>/admin-bearer.txt)"
    )]
    MissingToken,
    /// The base URL does not parse or is not http(s).
    #[error("{BASE_URL_VAR} is {value:?}, which is not usable: {reason}")]
    BadBaseUrl {
        /// The value as given, credentials removed.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The timeout is not a whole number of seconds in range.
    #[error("{TIMEOUT_VAR} is {value:?}; give a whole number of seconds from 1 to 3600")]
    BadTimeout {
        /// The value as given.
        value: String,
    },
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which maps a variable name to its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let token = lookup(TOKEN_VAR)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError::MissingToken)?;
        let raw = lookup(BASE_URL_VAR)
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = parse_base_url(&raw)?;
        let request_timeout = match lookup(TIMEOUT_VAR) {
            None => DEFAULT_TIMEOUT,
            Some(value) => match value.trim().parse::<u64>() {
                Ok(secs @ 1..=3600) => Duration::from_secs(secs),
                _ => return Err(ConfigError::BadTimeout { value }),
            },
        };
        Ok(Config { base_url, token: Bearer::new(token), request_timeout })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let bad = |reason: &str| ConfigError::BadBaseUrl {
        value: strip_userinfo(raw),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials belong in CRAFTING_TABLE_TOKEN, not in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not carry a query or a fragment"));
    }
    Ok(url)
}

/// Drops `user:password@` from a URL-looking string, for error messages.
fn strip_userinfo(raw: &str) -> String {
    match (raw.find("://"), raw.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***@{}", &raw[..scheme_end + 3], &raw[at + 1..])
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn token_is_required() {
        assert_eq!(read(&[]).unwrap_err(), ConfigError::MissingToken);
        assert_eq!(read(&[(TOKEN_VAR, "  ")]).unwrap_err(), ConfigError::MissingToken);
    }

    #[test]
    fn base_url_defaults_to_the_local_service() {
        let config = read(&[(TOKEN_VAR, "t0ken")]).unwrap();
        assert_eq!(config.base_url.as_str(), "http://127.0.0.1:8810/");
        assert_eq!(config.request_timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn unusable_base_urls_are_refused_without_echoing_credentials() {
        for bad in ["ftp://host", "not a url", "http://u:secret@host:1", "http://h/?a=b"] {
            let err = read(&[(TOKEN_VAR, "t"), (BASE_URL_VAR, bad)]).unwrap_err();
            assert!(matches!(err, ConfigError::BadBaseUrl { .. }), "{bad}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn timeout_is_bounded() {
        let ok = read(&[(TOKEN_VAR, "t"), (TIMEOUT_VAR, "5")]).unwrap();
        assert_eq!(ok.request_timeout, Duration::from_secs(5));
        for bad in ["0", "3601", "x"] {
            assert!(read(&[(TOKEN_VAR, "t"), (TIMEOUT_VAR, bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_debug_hides_the_secret() {
        let config = read(&[(TOKEN_VAR, "very-secret-token")]).unwrap();
        assert!(!format!("{config:?}").contains("very-secret-token"));
    }
}
