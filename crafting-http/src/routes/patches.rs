//! Patch attempts and digests, both thin shells over the engine's services.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use crafting_core::{PatchFilter, PatchStatus};
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
    finding_id: Option<i64>,
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

/// `POST /jobs/{id}/patches`: queues an attempt and answers 202 with it; 404
/// for a job the caller does not own, 503 while the patch loop is off.
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
    let finding_id = body.and_then(|b| b.finding_id);
    let patch = state.table.request_patch(&caller, &id, finding_id).await?;
    tracing::info!(patch = patch.id, finding_id = patch.finding_id, "patch attempt queued");
    Ok(ok(StatusCode::ACCEPTED, json!({ "patch": patch })))
}

/// `GET /patches?project=&status=&limit=`: the caller's attempts (all for an
/// admin), newest first.
pub async fn list_patches(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req, &["project", "status", "limit"])?;
    let filter = PatchFilter {
        project: q.get("project").map(str::to_owned),
        status: q.one_of(
            "status",
            PatchStatus::parse,
            "drafted, apply_failed, verify_failed, pr_opened, error",
        )?,
        limit: q.limit()?,
    };
    let patches = state.table.list_patches(&caller, filter).await?;
    Ok(ok(StatusCode::OK, json!({ "patches": patches })))
}

/// `GET /patches/{id}`: one attempt with its diff, verify job and pull request.
pub async fn get_patch(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    // Anything that is not a positive id is simply not an attempt.
    let id: i64 =
        id.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::from(crafting_core::Error::NotFound { what: "patch attempt" })
        })?;
    let patch = state.table.get_patch(&caller, id).await?;
    Ok(ok(StatusCode::OK, json!({ "patch": patch })))
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
