//! The one error type every route answers with, and its mapping from the
//! engine's errors.
//!
//! The caller's faults become 4xx answers whose message they can act on; our
//! own failures become a 500 with a generic sentence, and the full error is
//! logged once, here, where the conversion happens.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// A failed request: status, stable snake_case code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code for programs.
    pub code: &'static str,
    /// A sentence a person can act on.
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and sentence.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: well-formed, but a value is not acceptable.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503: the feature is not configured or not running.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// The answer for a path no route serves. Admin routes answer it too when
    /// the caller is not an admin, so they cannot be told apart from missing ones.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no such route; check the method and path against the API table in the README.",
        )
    }

    /// 404 for a resource that is missing or owned by another token; the
    /// two cases share this exact body.
    pub fn not_found(what: &str) -> Self {
        let hint = match what {
            "project" => "check the name, or list your projects with GET /projects",
            "job" => "check the id, or list your jobs with GET /jobs",
            "token" => "check the name, or list tokens with GET /admin/tokens",
            _ => "check the name or id in the path",
        };
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No {what} by that name or id is visible to this token; {hint}."),
        )
    }

    /// 401 for a missing, unknown or revoked bearer; all three look the same.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Send a valid, unrevoked token as 'Authorization: Bearer <token>'; \
             an administrator mints tokens with POST /admin/tokens.",
        )
    }

    /// 500 with a body that says nothing about our internals.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The service failed to handle this request; try again, and if it keeps failing, \
             ask the operator to check the service log.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        res.json(json!({"ok": false, "error": self.message, "code": self.code}))
    }
}

impl From<crafting_core::Error> for ApiError {
    fn from(err: crafting_core::Error) -> Self {
        use crafting_core::Error as E;
        match err {
            E::Invalid { code, message } => ApiError::invalid(code, capitalise(&message)),
            E::NotFound { what } => ApiError::not_found(what),
            E::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, capitalise(&message))
            }
            E::Unavailable { code, message } => ApiError::unavailable(code, capitalise(&message)),
            E::Stopped => ApiError::unavailable(
                "unavailable",
                "The service is shutting down; try again once it is back.",
            ),
            E::Git { .. } => {
                // The message is credential-free by construction in the core.
                tracing::warn!(error = %err, "git operation failed during a request");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "git_failed",
                    format!(
                        "{}; check the repository URL and that it is reachable.",
                        capitalise(&err.to_string())
                    ),
                )
            }
            other => {
                tracing::error!(error = %other, code = other.code(), "request failed inside the engine");
                ApiError::internal()
            }
        }
    }
}

/// Turns the core's lowercase message fragments into sentences.
fn capitalise(message: &str) -> String {
    let mut chars = message.chars();
    let mut out = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_statuses() {
        let cases: Vec<(crafting_core::Error, u16, &str)> = vec![
            (crafting_core::Error::invalid("invalid_name", "bad"), 422, "invalid_name"),
            (crafting_core::Error::NotFound { what: "job" }, 404, "not_found"),
            (crafting_core::Error::conflict("project_exists", "taken"), 409, "project_exists"),
            (
                crafting_core::Error::Unavailable { code: "x_off", message: "off".into() },
                503,
                "x_off",
            ),
            (crafting_core::Error::Stopped, 503, "unavailable"),
            (crafting_core::Error::Pool("secret detail".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
            assert!(!api.message.contains("secret detail"));
        }
    }

    #[test]
    fn messages_become_sentences() {
        assert_eq!(
            capitalise("a token named \"x\" already exists"),
            "A token named \"x\" already exists."
        );
        assert_eq!(capitalise("done."), "Done.");
        assert_eq!(capitalise(""), "");
    }
}
