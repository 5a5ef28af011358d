//! The crafting-table HTTP API as a library.
//!
//! [`app`] builds the actix-web `App` from a running
//! [`crafting_core::CraftingTable`] and an [`HttpConfig`]; the
//! `crafting-table serve` binary mounts it in an `HttpServer`, and tests can
//! mount it in-process with `actix_web::test::init_service`.
//!
//! # How a request flows
//!
//! 1. [`gate::gate`] resolves the client address (the TCP peer, or the
//!    `X-Forwarded-For` entry appended by a trusted proxy) and checks it against
//!    the global allowlist; then, for every route but `/healthz`, it looks the
//!    bearer up through the engine, checks the token's own networks and the
//!    admin scope, and stores the caller for the handler.
//! 2. The handler in [`routes`] reads its query and body through [`input`]
//!    (JSON only, bounded, unknown fields refused) and calls the engine.
//! 3. Every error is an [`ApiError`], rendered as
//!    `{"ok": false, "error": "<sentence>", "code": "<snake_case>"}`.
//!
//! # Invariants
//!
//! - **A resource owned by another token answers exactly like a missing one**:
//!   the engine answers NotFound for both, and [`ApiError::not_found`] renders
//!   one body per kind of resource.
//! - **Admin routes answer a non-admin like a path that does not exist.**
//! - **The bearer is never logged**; the access log names the token.
//! - **Job logs are streamed from their file in chunks**, never read whole.
//!
//! # Example
//!
//! ```no_run
//! use crafting_core::{Config, CraftingTable};
//! use crafting_http::HttpConfig;
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let table = CraftingTable::start(Config::new("/srv/crafting")).await.expect("engine starts");
//!     let config = HttpConfig::default();
//!     actix_web::HttpServer::new(move || crafting_http::app(table.clone(), config.clone()))
//!         .bind("127.0.0.1:8810")?
//!         .run()
//!         .await
//! }
//! ```
#![warn(missing_docs)]

pub mod error;
pub mod gate;
pub mod input;
pub mod net;
pub mod routes;

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use crafting_core::CraftingTable;

pub use error::ApiError;
pub use net::Cidr;

/// Default largest request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Settings of the HTTP layer (the engine has its own [`crafting_core::Config`]).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Networks requests may come from (`CRAFTING_LAN_CIDRS`).
    pub lan_cidrs: Vec<Cidr>,
    /// Peers whose `X-Forwarded-For` header is believed (`CRAFTING_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<Cidr>,
    /// Largest request body in bytes (`CRAFTING_MAX_BODY_BYTES`); larger ones get 413.
    pub max_body_bytes: usize,
    /// How often a followed log checks for new output and for the job's end.
    pub follow_poll: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            lan_cidrs: net::default_lan_cidrs(),
            trusted_proxies: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            follow_poll: Duration::from_millis(250),
        }
    }
}

/// What every handler shares: the engine and the HTTP settings.
pub struct AppState {
    /// The engine.
    pub table: CraftingTable,
    /// The HTTP settings.
    pub config: HttpConfig,
}

/// Builds the application: every route of the API behind the gate, with
/// JSON answers for unknown paths and wrong methods.
pub fn app(
    table: CraftingTable,
    config: HttpConfig,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(AppState { table, config }))
        .wrap(from_fn(gate::gate))
        .configure(routes::configure)
        .default_service(web::to(routes::no_route))
}
