//! `/projects`: registering, listing, reading, updating and removing projects.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use crafting_core::ProjectSpec;
use serde_json::json;

use super::ok;
use crate::AppState;
use crate::error::ApiError;
use crate::gate::Auth;
use crate::input::{Query, json_body};

/// `POST /projects`: registers a project owned by the caller.
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    let spec: ProjectSpec = json_body(&req, payload, state.config.max_body_bytes).await?;
    let project = state.table.create_project(&caller, spec).await?;
    tracing::info!(project = %project.name, owner = %project.owner, "project registered");
    let mut res = ok(StatusCode::CREATED, json!({"project": project}));
    if let Ok(location) = format!("/projects/{}", project.name).parse() {
        res.headers_mut().insert(actix_web::http::header::LOCATION, location);
    }
    Ok(res)
}

/// `GET /projects`: the caller's projects (every project for an admin).
pub async fn list(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    let projects = state.table.list_projects(&caller).await?;
    Ok(ok(StatusCode::OK, json!({"projects": projects})))
}

/// `GET /projects/{name}`.
pub async fn get(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    let project = state.table.get_project(&caller, &name).await?;
    Ok(ok(StatusCode::OK, json!({"project": project})))
}

/// `PUT /projects/{name}`: replaces the settings; the body's name must match.
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn update(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    // Ownership before the body, so a foreign project answers 404 whatever is sent.
    state.table.get_project(&caller, &name).await?;
    let spec: ProjectSpec = json_body(&req, payload, state.config.max_body_bytes).await?;
    let project = state.table.update_project(&caller, &name, spec).await?;
    tracing::info!("project updated");
    Ok(ok(StatusCode::OK, json!({"project": project})))
}

/// `DELETE /projects/{name}`: removes the project with its jobs, findings,
/// workspace and logs; running jobs are cancelled first.
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn delete(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    state.table.delete_project(&caller, &name).await?;
    tracing::info!(by = %caller.token, "project deleted");
    Ok(ok(StatusCode::OK, json!({"deleted": name.as_str()})))
}
