//! The route table and the handlers, one file per kind of resource.
//!
//! | route | file |
//! |---|---|
//! | `GET /healthz` | here |
//! | `/admin/tokens...` | [`tokens`] |
//! | `/projects...` | [`projects`] |
//! | `/jobs`, `/jobs/{id}`, cancel, findings | [`jobs`] |
//! | `/jobs/{id}/log` | [`log`] |
//! | `/jobs/{id}/patches`, `/patches...`, digests | [`patches`] |

pub mod jobs;
pub mod log;
pub mod patches;
pub mod projects;
pub mod tokens;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, Resource, web};
use serde::Serialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::input::Query;

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(
            resource("/admin/tokens")
                .route(web::post().to(tokens::mint))
                .route(web::get().to(tokens::list)),
        )
        .service(resource("/admin/tokens/{name}").route(web::delete().to(tokens::revoke)))
        .service(resource("/admin/digest/run-now").route(web::post().to(patches::digest_run_now)))
        .service(
            resource("/projects")
                .route(web::post().to(projects::create))
                .route(web::get().to(projects::list)),
        )
        .service(
            resource("/projects/{name}")
                .route(web::get().to(projects::get))
                .route(web::put().to(projects::update))
                .route(web::delete().to(projects::delete)),
        )
        .service(resource("/projects/{name}/jobs").route(web::post().to(jobs::enqueue)))
        .service(resource("/jobs").route(web::get().to(jobs::list)))
        .service(resource("/jobs/{id}").route(web::get().to(jobs::get)))
        .service(resource("/jobs/{id}/log").route(web::get().to(log::stream)))
        .service(resource("/jobs/{id}/cancel").route(web::post().to(jobs::cancel)))
        .service(resource("/jobs/{id}/findings").route(web::get().to(jobs::findings)))
        .service(resource("/jobs/{id}/patches").route(web::post().to(patches::create_patch)))
        .service(resource("/patches").route(web::get().to(patches::list_patches)))
        .service(resource("/patches/{id}").route(web::get().to(patches::get_patch)))
        .service(resource("/digests/{date}").route(web::get().to(patches::digest)));
}

/// A resource whose wrong methods answer a JSON 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// A success body: `{"ok": true}` followed by the fields of `fields`, which
/// must serialise as a map (a struct, or a `json!` object).
///
/// The body is written straight from `fields` into bytes: no intermediate
/// `serde_json::Value`, whose tree of small allocations cost more than the
/// query behind a fifty-job list.
pub(crate) fn ok(status: StatusCode, fields: impl Serialize) -> HttpResponse {
    #[derive(Serialize)]
    struct Success<T> {
        ok: bool,
        #[serde(flatten)]
        fields: T,
    }
    let mut body = Vec::with_capacity(4096);
    match serde_json::to_writer(&mut body, &Success { ok: true, fields }) {
        Ok(()) => HttpResponse::build(status)
            .insert_header(("cache-control", "no-store"))
            .content_type("application/json")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "a response body could not be serialised");
            actix_web::ResponseError::error_response(&ApiError::internal())
        }
    }
}

/// Answer for paths no route serves.
pub async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::no_route())
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; check the method against the API table in the README.",
            req.method(),
            req.match_info().as_str()
        ),
    ))
}

/// `GET /healthz`: liveness and runner figures; no token needed.
async fn healthz(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Query::parse(&req, &[])?;
    let runner = state.table.stats().await?;
    Ok(ok(
        StatusCode::OK,
        json!({
            "status": "live",
            "version": env!("CARGO_PKG_VERSION"),
            "runner": runner,
            "isolation": state.table.isolation().as_str(),
        }),
    ))
}
