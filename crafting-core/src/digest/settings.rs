//! Digest settings: the schedule, the SMTP relay and the public URL used in
//! links, read from `CRAFTING_DIGEST_*`, `CRAFTING_SMTP_*`,
//! `CRAFTING_PUBLIC_URL` and `CRAFTING_BIND`.

use std::fmt;
use std::time::Duration;

use chrono_tz::Tz;

use super::schedule::{parse_cron, parse_time_zone};
use crate::error::{Error, Result};

/// The schedule when `CRAFTING_DIGEST_CRON` is not set: 06:00 every day.
pub const DEFAULT_CRON: &str = "0 0 6 * * *";
/// The time zone when `CRAFTING_DIGEST_TZ` is not set.
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::America::Los_Angeles;
/// The sender when `CRAFTING_SMTP_FROM` is not set.
pub const DEFAULT_FROM: &str = "crafting-table <crafting-table@localhost>";
/// The listen address assumed for links when `CRAFTING_BIND` is not set.
const DEFAULT_BIND: &str = "127.0.0.1:8810";

/// Everything the daily digest needs.
#[derive(Debug, Clone)]
pub struct DigestConfig {
    /// When digests fire (`CRAFTING_DIGEST_CRON`, [`DEFAULT_CRON`]); 5, 6 or
    /// 7 fields, see [`parse_cron`].
    pub cron: String,
    /// The zone `cron` is read in (`CRAFTING_DIGEST_TZ`, America/Los_Angeles).
    pub time_zone: Tz,
    /// The relay; `None` (no `CRAFTING_SMTP_HOST`) turns the scheduler off
    /// and leaves only dry runs.
    pub smtp: Option<SmtpConfig>,
    /// Base of the API links in mails, without a trailing slash
    /// (`CRAFTING_PUBLIC_URL`, else `http://<CRAFTING_BIND>`).
    pub public_url: String,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            cron: DEFAULT_CRON.to_owned(),
            time_zone: DEFAULT_TIME_ZONE,
            smtp: None,
            public_url: format!("http://{DEFAULT_BIND}"),
        }
    }
}

/// How to reach the SMTP relay.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Host name or address (`CRAFTING_SMTP_HOST`).
    pub host: String,
    /// Port (`CRAFTING_SMTP_PORT`); 587 for STARTTLS, 465 for TLS, 25 for
    /// plain when absent.
    pub port: Option<u16>,
    /// User name (`CRAFTING_SMTP_USER`); authentication needs it and `pass`.
    pub user: Option<String>,
    /// Password (`CRAFTING_SMTP_PASS`); never printed by `Debug`.
    pub pass: Option<String>,
    /// Sender mailbox, `addr` or `Name <addr>` (`CRAFTING_SMTP_FROM`, [`DEFAULT_FROM`]).
    pub from: String,
    /// Transport security (`CRAFTING_SMTP_TLS`: `starttls`, `tls` or `none`; starttls).
    pub tls: SmtpTls,
    /// How long one SMTP exchange may take.
    pub timeout: Duration,
}

impl SmtpConfig {
    /// A relay at `host` with the defaults: STARTTLS, no authentication.
    pub fn new(host: impl Into<String>) -> Self {
        SmtpConfig {
            host: host.into(),
            port: None,
            user: None,
            pass: None,
            from: DEFAULT_FROM.to_owned(),
            tls: SmtpTls::StartTls,
            timeout: Duration::from_secs(60),
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("pass", &self.pass.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Transport security towards the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the relay must offer.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption, for a relay on the same host or network.
    None,
}

impl DigestConfig {
    /// Reads the digest variables through `get` (unset and blank are the same).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut c = DigestConfig::default();
        if let Some(v) = get("CRAFTING_DIGEST_CRON") {
            parse_cron(&v)?;
            c.cron = v;
        }
        if let Some(v) = get("CRAFTING_DIGEST_TZ") {
            c.time_zone = parse_time_zone(&v)?;
        }
        c.public_url = match get("CRAFTING_PUBLIC_URL") {
            Some(url) => url,
            None => format!("http://{}", get("CRAFTING_BIND").as_deref().unwrap_or(DEFAULT_BIND)),
        }
        .trim_end_matches('/')
        .to_owned();
        if let Some(host) = get("CRAFTING_SMTP_HOST") {
            let mut s = SmtpConfig::new(host);
            if let Some(v) = get("CRAFTING_SMTP_PORT") {
                s.port = Some(v.parse().map_err(|_| {
                    Error::invalid(
                        "invalid_config",
                        format!("CRAFTING_SMTP_PORT={v:?} is not a port number (1-65535)"),
                    )
                })?);
            }
            s.user = get("CRAFTING_SMTP_USER");
            s.pass = get("CRAFTING_SMTP_PASS");
            if let Some(v) = get("CRAFTING_SMTP_FROM") {
                s.from = v;
            }
            if let Some(v) = get("CRAFTING_SMTP_TLS") {
                s.tls = match v.to_ascii_lowercase().as_str() {
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Tls,
                    "none" => SmtpTls::None,
                    _ => {
                        return Err(Error::invalid(
                            "invalid_config",
                            format!("CRAFTING_SMTP_TLS={v:?} must be starttls, tls or none"),
                        ));
                    }
                };
            }
            super::mail::parse_mailbox("CRAFTING_SMTP_FROM", &s.from)?;
            c.smtp = Some(s);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<DigestConfig> {
        let vars: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DigestConfig::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_leave_smtp_off() {
        let c = read(&[]).unwrap();
        assert!(c.smtp.is_none());
        assert_eq!(c.cron, DEFAULT_CRON);
        assert_eq!(c.time_zone, DEFAULT_TIME_ZONE);
        assert_eq!(c.public_url, "http://127.0.0.1:8810");
    }

    #[test]
    fn every_variable_is_read() {
        let c = read(&[
            ("CRAFTING_SMTP_HOST", "mail.example.org"),
            ("CRAFTING_SMTP_PORT", "2525"),
            ("CRAFTING_SMTP_USER", "bot"),
            ("CRAFTING_SMTP_PASS", "s3cret"),
            ("CRAFTING_SMTP_FROM", "CI <ci@example.org>"),
            ("CRAFTING_SMTP_TLS", "TLS"),
            ("CRAFTING_DIGEST_CRON", "30 7 * * 1-5"),
            ("CRAFTING_DIGEST_TZ", "Europe/Berlin"),
            ("CRAFTING_BIND", "0.0.0.0:9000"),
        ])
        .unwrap();
        let s = c.smtp.as_ref().unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("mail.example.org", Some(2525), SmtpTls::Tls)
        );
        assert_eq!((s.user.as_deref(), s.pass.as_deref()), (Some("bot"), Some("s3cret")));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.cron, "30 7 * * 1-5");
        assert_eq!(c.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(c.public_url, "http://0.0.0.0:9000");
        let c = read(&[("CRAFTING_PUBLIC_URL", "https://ci.example.org/")]).unwrap();
        assert_eq!(c.public_url, "https://ci.example.org");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("CRAFTING_DIGEST_CRON", "daily"),
            ("CRAFTING_DIGEST_TZ", "PST8PDT-ish"),
            ("CRAFTING_SMTP_PORT", "99999"),
            ("CRAFTING_SMTP_TLS", "ssl"),
            ("CRAFTING_SMTP_FROM", "not an address"),
        ] {
            let err = read(&[("CRAFTING_SMTP_HOST", "h"), (k, v)]).unwrap_err();
            assert_eq!(err.code(), "invalid_config");
            assert!(err.to_string().contains(k), "{err}");
        }
    }
}
