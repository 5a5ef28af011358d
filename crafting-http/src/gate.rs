//! The middleware every request passes: the network allowlist, the bearer
//! token, the token's own networks, the admin scope, and one access-log line.
//!
//! Order matters and is fixed here: network first (a refused network learns
//! nothing else), then the bearer, then the token's networks, then the admin
//! scope. Admin routes answer a non-admin exactly like a path that does not
//! exist, so their existence is not revealed.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use crafting_core::Caller;

use crate::AppState;
use crate::error::ApiError;
use crate::net::{self, Cidr};

/// The one route that needs no token.
const OPEN_PATH: &str = "/healthz";

/// The authenticated caller of a request, put in place by [`gate`].
#[derive(Debug, Clone)]
pub struct Auth(pub Caller);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Ready<Result<Auth, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Only reachable without a caller if a route were mounted outside the gate.
        ready(req.extensions().get::<Auth>().cloned().ok_or_else(ApiError::unauthorized))
    }
}

impl Auth {
    /// The caller, refused like a missing route unless it is an admin. The
    /// gate already does this by path; handlers check again so a route moved
    /// to another path keeps its protection.
    pub fn admin(&self) -> Result<&Caller, ApiError> {
        if self.0.is_admin { Ok(&self.0) } else { Err(ApiError::no_route()) }
    }
}

/// True for paths only admins may use.
fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/") || path.starts_with("/digests/")
}

/// The middleware function; mount it with `actix_web::middleware::from_fn`.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    // The path the router matches on (percent-decoded where that is safe), so
    // that `/%61dmin/...` cannot slip past the admin check.
    let path = req.match_info().as_str().to_owned();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state else {
        tracing::error!("the HTTP app was built without its state");
        return Ok(req.into_response(ApiError::internal().error_response()));
    };

    let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(net::NO_PEER);
    let forwarded = forwarded_for(req.headers());
    let Some(client) = net::client_addr(peer, forwarded.as_deref(), &state.config.trusted_proxies)
    else {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_forwarded_for",
            format!(
                "The proxy at {peer} sent an X-Forwarded-For header whose entries cannot be \
                 read, so the client's address is unknown; fix the proxy's header settings."
            ),
        );
        tracing::warn!(%method, path = %path, peer = %peer, "request refused: unreadable X-Forwarded-For");
        return Ok(req.into_response(err.error_response()));
    };
    let verdict = admit(&state, &req, &path, client).await;
    let (token_name, res) = match verdict {
        Ok(caller) => {
            let name = caller.as_ref().map(|c| c.token.clone());
            if let Some(caller) = caller {
                req.extensions_mut().insert(Auth(caller));
            }
            (name, next.call(req).await?.map_into_boxed_body())
        }
        Err((name, err)) => (name, req.into_response(err.error_response())),
    };

    let status = res.status();
    let latency_ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0);
    let token = token_name.as_deref().unwrap_or("-");
    if status.is_server_error() {
        tracing::warn!(%method, path = %path, status = status.as_u16(), latency_ms = %latency_ms, token, client = %client, "request");
    } else {
        tracing::info!(%method, path = %path, status = status.as_u16(), latency_ms = %latency_ms, token, client = %client, "request");
    }
    Ok(res)
}

/// Decides whether a request may go on. `Ok(None)` lets an open route
/// through without a caller; errors carry the token name when one was known.
async fn admit(
    state: &AppState,
    req: &ServiceRequest,
    path: &str,
    client: IpAddr,
) -> Result<Option<Caller>, (Option<String>, ApiError)> {
    if !net::any_contains(&state.config.lan_cidrs, client) {
        return Err((
            None,
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_network",
                format!(
                    "Requests from {client} are not allowed; ask the operator to add its network to CRAFTING_LAN_CIDRS."
                ),
            ),
        ));
    }
    if path == OPEN_PATH {
        return Ok(None);
    }
    let Some(bearer) = bearer(req.headers()) else {
        return Err((None, ApiError::unauthorized()));
    };
    let token = match state.table.authenticate(bearer).await {
        Ok(Some(token)) => token,
        Ok(None) => return Err((None, ApiError::unauthorized())),
        Err(e) => return Err((None, ApiError::from(e))),
    };
    if !token.ip_cidrs.is_empty() && !token_allows(&token.ip_cidrs, client) {
        return Err((
            Some(token.name.clone()),
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_network",
                format!(
                    "This token may not be used from {client}; use it from one of its networks, \
                     or ask an administrator for a token that allows this one."
                ),
            ),
        ));
    }
    if is_admin_path(path) && !token.is_admin {
        return Err((Some(token.name), ApiError::no_route()));
    }
    Ok(Some(Caller { token: token.name, is_admin: token.is_admin }))
}

/// True when one of a token's networks holds `client`. A stored network that
/// no longer parses allows nothing.
fn token_allows(cidrs: &[String], client: IpAddr) -> bool {
    cidrs.iter().any(|text| match text.parse::<Cidr>() {
        Ok(cidr) => cidr.contains(client),
        Err(_) => {
            tracing::warn!(cidr = %text, "a token carries a network that does not parse; ignoring it");
            false
        }
    })
}

fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    // Several X-Forwarded-For lines form one list, in order. A line that is
    // not text becomes an entry that cannot parse, so the walk fails closed.
    let parts: Vec<&str> =
        headers.get_all("x-forwarded-for").map(|v| v.to_str().unwrap_or("\u{0}")).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn bearer_header_is_read_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer ct_abc"));
        assert_eq!(bearer(&h), Some("ct_abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  ct_abc "));
        assert_eq!(bearer(&h), Some("ct_abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwdw=="));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn admin_paths_are_recognised() {
        for p in [
            "/admin",
            "/admin/tokens",
            "/admin/tokens/x",
            "/admin/digest/run-now",
            "/digests/2026-01-01",
        ] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in ["/administrator", "/projects", "/jobs/admin", "/digests"] {
            assert!(!is_admin_path(p), "{p}");
        }
    }

    #[test]
    fn repeated_forwarded_headers_join_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        h.append(header::X_FORWARDED_FOR, HeaderValue::from_static("10.1.2.3"));
        assert_eq!(forwarded_for(&h).as_deref(), Some("10.1.2.3"));
        h.append(header::X_FORWARDED_FOR, HeaderValue::from_static("10.4.5.6"));
        assert_eq!(forwarded_for(&h).as_deref(), Some("10.1.2.3,10.4.5.6"));
    }
}
