//! Jobs: enqueueing, listing, reading, cancelling, and their findings.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use crafting_core::{FindingRecord, Job, JobFilter, JobRequest, JobStatus};
use serde_json::json;

use super::ok;
use crate::AppState;
use crate::error::ApiError;
use crate::gate::Auth;
use crate::input::{Query, json_body, shorten};

/// `POST /projects/{name}/jobs`: queues a recipe run; answers 202 with the job id.
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn enqueue(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    // Ownership before the body, so a foreign project answers 404 whatever is sent.
    state.table.get_project(&caller, &name).await?;
    let body: JobRequest = json_body(&req, payload, state.config.max_body_bytes).await?;
    let job = state.table.enqueue(&caller, &name, body).await?;
    tracing::info!(job_id = %job.id, recipe = %job.recipe, subproject = %job.subproject, "job queued");
    Ok(ok(StatusCode::ACCEPTED, json!({"job_id": job.id, "job": job})))
}

/// `GET /jobs?project=&status=&limit=`: the caller's jobs (all for an admin), newest first.
pub async fn list(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req, &["project", "status", "limit"])?;
    let filter = JobFilter {
        project: q.get("project").map(str::to_owned),
        status: q.one_of(
            "status",
            JobStatus::parse,
            "queued, running, succeeded, failed, timed_out, cancelled",
        )?,
        limit: q.limit()?,
    };
    let jobs = state.table.list_jobs(&caller, filter).await?;
    #[derive(serde::Serialize)]
    struct Body {
        jobs: Vec<Job>,
    }
    Ok(ok(StatusCode::OK, Body { jobs }))
}

/// `GET /jobs/{id}`: the job and the last 200 lines of its log.
pub async fn get(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    let view = state.table.get_job(&caller, &id).await?;
    Ok(ok(StatusCode::OK, view))
}

/// `POST /jobs/{id}/cancel`: stops a queued or running job; 409 once it has ended.
#[tracing::instrument(skip_all, fields(job_id = %id))]
pub async fn cancel(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    let job = state.table.cancel_job(&caller, &id).await?;
    tracing::info!(status = job.status.as_str(), by = %caller.token, "job cancel requested");
    Ok(ok(StatusCode::OK, json!({"job": job})))
}

/// `GET /jobs/{id}/findings[?compare=previous|<job id>][&format=json|sarif]`.
///
/// Without `compare`, the job's findings in the order they were reported.
/// With it, `new`, `fixed` and `open` against the given job or the previous
/// finished job of the same project, subproject and recipe. With
/// `format=sarif`, a bare SARIF 2.1.0 document as GitHub code scanning takes it.
pub async fn findings(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req, &["compare", "format"])?;
    match q.get("format") {
        None | Some("json") => {}
        Some("sarif") => {
            if q.get("compare").is_some() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "\"compare\" and \"format=sarif\" do not go together; SARIF lists one job's \
                     findings.",
                ));
            }
            let records = state.table.findings(&caller, &id).await?;
            let findings: Vec<_> = records.into_iter().map(|r| r.finding).collect();
            let mut tool = crafting_parsers::SarifTool::new("crafting-table");
            tool.version = Some(env!("CARGO_PKG_VERSION").to_owned());
            let doc = crafting_parsers::to_sarif(&findings, &tool);
            return Ok(HttpResponse::Ok()
                .insert_header(("cache-control", "no-store"))
                .content_type("application/sarif+json")
                .json(doc));
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "Query parameter \"format\" must be json or sarif; got {:?}.",
                    shorten(other)
                ),
            ));
        }
    }
    match q.get("compare") {
        None => {
            let findings = state.table.findings(&caller, &id).await?;
            #[derive(serde::Serialize)]
            struct Body<'a> {
                job_id: &'a str,
                findings: Vec<FindingRecord>,
            }
            Ok(ok(StatusCode::OK, Body { job_id: id.as_str(), findings }))
        }
        Some(base) => {
            let base = match base {
                "previous" => None,
                "" => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        "Query parameter \"compare\" needs a value: \"previous\" or a job id.",
                    ));
                }
                other => Some(other),
            };
            let cmp = state.table.compare(&caller, &id, base).await?;
            Ok(ok(
                StatusCode::OK,
                json!({
                    "job_id": id.as_str(),
                    "base_job_id": cmp.base_job_id,
                    "new": cmp.new,
                    "fixed": cmp.fixed,
                    "open": cmp.open,
                }),
            ))
        }
    }
}
