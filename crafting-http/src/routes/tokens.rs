//! `/admin/tokens`: minting, listing and revoking bearer tokens (admin only).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use crafting_core::NewToken;
use serde_json::json;

use super::ok;
use crate::AppState;
use crate::error::ApiError;
use crate::gate::Auth;
use crate::input::{Query, json_body};

/// `POST /admin/tokens`: mints a token; the bearer is in this answer only.
#[tracing::instrument(skip_all)]
pub async fn mint(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let admin = auth.admin()?;
    Query::parse(&req, &[])?;
    let body: NewToken = json_body(&req, payload, state.config.max_body_bytes).await?;
    let (token, bearer) = state.table.mint_token(body).await?;
    tracing::info!(token = %token.name, is_admin = token.is_admin, by = %admin.token, "token minted");
    Ok(ok(StatusCode::CREATED, json!({"token": token, "bearer": bearer})))
}

/// `GET /admin/tokens`: every token, revoked ones included, without secrets.
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth.admin()?;
    Query::parse(&req, &[])?;
    let tokens = state.table.list_tokens().await?;
    Ok(ok(StatusCode::OK, json!({"tokens": tokens})))
}

/// `DELETE /admin/tokens/{name}`: revokes a token; requests with it get 401 from now on.
#[tracing::instrument(skip_all, fields(token = %name))]
pub async fn revoke(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = auth.admin()?;
    Query::parse(&req, &[])?;
    state.table.revoke_token(&name).await?;
    tracing::info!(by = %admin.token, "token revoked");
    Ok(ok(StatusCode::OK, json!({"revoked": name.as_str()})))
}
