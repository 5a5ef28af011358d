//! Patch attempts and digests.
//!
//! The digest routes call the engine's digest service. The patch routes are
//! mounted with their final paths, checks and order of checks (token, job
//! ownership, query and body shape) and end in a 503 naming what is missing:
//! this build has no patch loop.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::gate::Auth;
use crate::input::{Query, json_body, optional_json_body, shorten};
use crate::routes::ok;

/// Body of `POST /jobs/{id}/patches`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRequest {
    /// The finding to fix; the patcher picks one when absent.
    #[serde(default)]
    finding_id: Option<u64>,
}

/// Body of `POST /admin/digest/run-now`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestRunRequest {
    /// Build the digest without sending mail. Required: a real send is never
    /// a default.
    dry_run: bool,
    /// `YYYY-MM-DD`; today when absent.
    #[serde(default)]
    date: Option<String>,
}

fn patcher_unconfigured() -> ApiError {
    ApiError::unavailable(
        "patcher_unconfigured",
        "The patch loop is not configured: it needs an agent (CRAFTING_AGENT_KIND) and a forge \
         (CRAFTING_GITEA_URL with its token, or CRAFTING_GITHUB_TOKEN); set them and restart \
         the service.",
    )
}

/// `POST /jobs/{id}/patches`: 404 for a job the caller does not own, then 503.
#[tracing::instrument(skip_all, fields(job_id = %id))]
pub async fn create_patch(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    state.table.job_status(&caller, &id).await?;
    let body: Option<PatchRequest> =
        optional_json_body(&req, payload, state.config.max_body_bytes).await?;
    tracing::debug!(finding_id = ?body.and_then(|b| b.finding_id), "patch attempt refused, no patcher");
    Err(patcher_unconfigured())
}

/// `GET /patches?project=&status=&limit=`.
pub async fn list_patches(Auth(_): Auth, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req, &["project", "status", "limit"])?;
    q.limit()?;
    Err(patcher_unconfigured())
}

/// `GET /patches/{id}`.
pub async fn get_patch(
    Auth(_): Auth,
    req: HttpRequest,
    _id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    Err(patcher_unconfigured())
}

/// `GET /digests/{date}` (admin): the day's digest for every project, rendered
/// without sending anything.
pub async fn digest(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    date: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.admin()?;
    Query::parse(&req, &[])?;
    let date = check_date(&date)?;
    let digest = state.table.render_digest(date).await?;
    Ok(ok(StatusCode::OK, json!({ "digest": digest })))
}

/// `POST /admin/digest/run-now` (admin): builds and, unless `dry_run`, sends
/// the digest of `date` (the newest closed day when absent).
pub async fn digest_run_now(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.admin()?;
    Query::parse(&req, &[])?;
    let body: DigestRunRequest = json_body(&req, payload, state.config.max_body_bytes).await?;
    let date = body.date.as_deref().map(check_date).transpose()?;
    let report = state.table.run_digest_now(date, body.dry_run).await?;
    Ok(ok(StatusCode::OK, json!({ "report": report })))
}

/// Checks a calendar date written `YYYY-MM-DD`.
fn check_date(text: &str) -> Result<chrono::NaiveDate, ApiError> {
    let shape_ok = text.len() == 10
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) if shape_ok => Ok(date),
        _ => Err(ApiError::invalid(
            "invalid_date",
            format!(
                "{:?} is not a calendar date; write it as YYYY-MM-DD, e.g. 2026-03-01.",
                shorten(text)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked() {
        for good in ["2026-03-01", "2024-02-29"] {
            assert!(check_date(good).is_ok(), "{good}");
        }
        for bad in ["2026-3-1", "2026-02-30", "20260301", "yesterday", "2026-03-01x", "+026-03-01"]
        {
            assert_eq!(check_date(bad).unwrap_err().code, "invalid_date", "{bad}");
        }
    }
}
