//! Building digest mails and handing them to the SMTP relay with lettre.
//!
//! Everything a repository controls (finding text, file paths, test names)
//! only ever reaches the bodies, and the bodies are encoded by lettre as
//! whole MIME parts, so none of it can start a header or end the message.
//! The subject holds the project name, the date and counts; it is stripped of
//! control characters anyway and encoded by lettre (RFC 2047 for non-ASCII).

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::settings::{SmtpConfig, SmtpTls};
use crate::error::{Error, Result};

/// Parses a mailbox (`addr` or `Name <addr>`); `what` names the setting or
/// field in the error.
pub fn parse_mailbox(what: &str, value: &str) -> Result<Mailbox> {
    value.parse().map_err(|e| {
        Error::invalid(
            "invalid_config",
            format!("{what}={value:?} is not a mailbox such as ci@example.org ({e})"),
        )
    })
}

/// Replaces every control character (CR and LF included) with a space, so
/// that a value stays on one header line.
pub fn one_line(s: &str) -> String {
    let cleaned: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One mail, ready to hand to [`Mailer::send`].
#[derive(Debug, Clone)]
pub struct Mail {
    /// Recipients, all in `To`.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl Mail {
    /// The RFC 5322 message: `multipart/alternative` with the text part
    /// first and the HTML part second.
    pub fn to_message(&self, from: &Mailbox) -> std::result::Result<Message, String> {
        let mut b = Message::builder()
            .from(from.clone())
            .subject(one_line(&self.subject))
            .message_id(None)
            .header(AutoSubmitted);
        for addr in &self.to {
            let to: Mailbox =
                addr.parse().map_err(|e| format!("recipient {addr:?} is not an address: {e}"))?;
            b = b.to(to);
        }
        b.multipart(MultiPart::alternative_plain_html(self.text.clone(), self.html.clone()))
            .map_err(|e| format!("building the message: {e}"))
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834), so that vacation responders
/// and ticket systems do not answer a digest.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        if s.trim().eq_ignore_ascii_case("auto-generated") {
            Ok(AutoSubmitted)
        } else {
            Err(format!("unexpected Auto-Submitted value {s:?}").into())
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// The SMTP relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
}

impl Mailer {
    /// A mailer for the relay in `cfg`. No connection is made until a send.
    pub fn new(cfg: &SmtpConfig) -> Result<Mailer> {
        let from = parse_mailbox("CRAFTING_SMTP_FROM", &cfg.from)?;
        let tls_failed = |e: lettre::transport::smtp::Error| {
            Error::invalid(
                "invalid_config",
                format!("CRAFTING_SMTP_HOST={:?} cannot be used with TLS: {e}", cfg.host),
            )
        };
        let mut builder = match cfg.tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(tls_failed)?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(tls_failed)?
            }
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
        };
        if let Some(port) = cfg.port {
            builder = builder.port(port);
        }
        if let (Some(user), Some(pass)) = (&cfg.user, &cfg.pass) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        let relay =
            format!("{}:{}", cfg.host, cfg.port.map_or("default".into(), |p| p.to_string()));
        Ok(Mailer { transport: builder.timeout(Some(cfg.timeout)).build(), from, relay })
    }

    /// Sends one mail; the error is the reason, fit for the `digest_runs` row.
    pub async fn send(&self, mail: &Mail) -> std::result::Result<(), String> {
        let message = mail.to_message(&self.from)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP relay {} refused or failed: {e}", self.relay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_every_line_break() {
        assert_eq!(one_line("a\r\nBcc: x@y\rz\n\tq\u{85}w"), "a Bcc: x@y z q w");
    }

    #[test]
    fn a_hostile_subject_stays_one_header() {
        let mail = Mail {
            to: vec!["dev@example.org".into()],
            subject: "[crafting-table] p\r\nBcc: evil@example.org\r\nX: ünïcode".into(),
            text: "body\n".into(),
            html: "<p>body</p>\n".into(),
        };
        let from = parse_mailbox("from", "ci@example.org").unwrap();
        let raw = String::from_utf8(mail.to_message(&from).unwrap().formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(!head.lines().any(|l| l.starts_with("Bcc:") || l.starts_with("X:")), "{head}");
        assert!(head.contains("multipart/alternative"), "{head}");
    }

    #[test]
    fn a_bad_recipient_is_a_reason_not_a_panic() {
        let mail = Mail {
            to: vec!["not an address".into()],
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
        };
        let from = parse_mailbox("from", "ci@example.org").unwrap();
        assert!(mail.to_message(&from).unwrap_err().contains("not an address"));
    }
}
