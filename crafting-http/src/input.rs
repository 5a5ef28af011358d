//! Reading request bodies and query strings with the checks every route
//! shares: JSON only, bounded size, unknown fields and parameters refused,
//! numbers that say what was wrong with them.
//!
//! Bodies are read by an explicit call inside each handler rather than by an
//! extractor, so a handler decides the order of its checks (for example,
//! ownership of a job before the shape of the body).

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// Past the limit a body is still read (and thrown away) up to this many
/// bytes, so the client gets to read our 413 instead of a reset connection.
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

/// Reads a JSON body into `T`.
///
/// 415 without `Content-Type: application/json`, 413 past `limit` bytes, 400
/// for text that is not JSON, 422 for JSON of the wrong shape (unknown or
/// missing fields, wrong types).
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_body(req, payload, limit, true).await?;
    parse_json(&bytes)
}

/// Like [`json_body`], but an empty body without a content type is `None`.
pub async fn optional_json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Option<T>, ApiError> {
    let declared = req.headers().contains_key(header::CONTENT_TYPE);
    let bytes = read_body(req, payload, limit, declared).await?;
    if bytes.is_empty() && !declared {
        return Ok(None);
    }
    if !declared {
        return Err(unsupported_media_type());
    }
    parse_json(&bytes).map(Some)
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    require_json: bool,
) -> Result<web::BytesMut, ApiError> {
    if require_json && !is_json(req) {
        drain(&mut payload, 0).await;
        return Err(unsupported_media_type());
    }
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared_len
        && len > limit as u64
    {
        if len <= DRAIN_CAP {
            drain(&mut payload, 0).await;
        }
        return Err(too_large(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "unreadable_body",
                format!("The request body could not be read ({e}); send it again."),
            )
        })?;
        if body.len() + chunk.len() > limit {
            let seen = (body.len() + chunk.len()) as u64;
            drain(&mut payload, seen).await;
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and discards what is left of a body, up to [`DRAIN_CAP`] in all.
async fn drain(payload: &mut web::Payload, mut seen: u64) {
    while seen < DRAIN_CAP {
        match payload.next().await {
            Some(Ok(chunk)) => seen += chunk.len() as u64,
            _ => break,
        }
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the body as JSON with the header 'Content-Type: application/json'.",
    )
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "The request body is larger than the {limit} bytes this service accepts; send a smaller one."
        ),
    )
}

/// Parses JSON text, telling malformed text (400) from a wrong shape (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "The request body is empty; send a JSON object.",
        ));
    }
    // Bodies are JSON objects: serde would also fill a struct from an array
    // of its fields in order, which would sidestep the unknown-field check.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(ApiError::invalid(
            "invalid_body",
            "The request body must be a JSON object with named fields, such as {\"recipe\": \"test\"}.",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        Category::Data => ApiError::invalid(
            "invalid_body",
            format!("The JSON body does not have the expected shape: {e}. Fix that field and send it again."),
        ),
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("The request body is not valid JSON ({e}); send a well-formed JSON object."),
        ),
    })
}

/// A query string, checked against the parameters a route knows.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// Largest `limit` a list returns; larger values are capped to it.
pub const MAX_LIMIT: u32 = 500;

impl Query {
    /// Parses the request's query string; 400 for a parameter not in
    /// `known`, for one given twice, or for text that is not a query string.
    pub fn parse(req: &HttpRequest, known: &[&str]) -> Result<Query, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    "The query string could not be read; encode it as name=value pairs joined by '&'.",
                )
            })?
            .into_inner();
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                let allowed = if known.is_empty() {
                    "this route takes no query parameters".to_owned()
                } else {
                    format!("this route takes {}", known.join(", "))
                };
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("Query parameter {:?} is not known; {allowed}.", shorten(name)),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("Query parameter {name:?} is given twice; give it once."),
                ));
            }
        }
        Ok(Query { pairs })
    }

    /// The raw value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A parameter that names one of a fixed set of values, read with
    /// `parse`; `choices` lists them for the error.
    pub fn one_of<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        choices: &str,
    ) -> Result<Option<T>, ApiError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        parse(text).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "Query parameter {name:?} must be one of {choices}; got {:?}.",
                    shorten(text)
                ),
            )
        })
    }

    /// `limit`: a whole number, clamped to 1..=500.
    pub fn limit(&self) -> Result<Option<u32>, ApiError> {
        let Some(text) = self.get("limit") else { return Ok(None) };
        let n = whole_number("limit", text, "from 1 to 500 (larger values are capped at 500)")?;
        if n == 0 {
            return Err(ApiError::bad_request(
                "invalid_query",
                "Query parameter \"limit\" must be a whole number from 1 to 500 (larger values \
                 are capped at 500); got 0.",
            ));
        }
        Ok(Some(n.min(u64::from(MAX_LIMIT)) as u32))
    }

    /// A byte offset such as `offset`.
    pub fn offset(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        whole_number(name, text, "of bytes to skip, 0 or more").map(Some)
    }

    /// A yes/no flag: `1`, `true`, `yes` or `0`, `false`, `no`.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("0" | "false" | "no") => Ok(false),
            Some("" | "1" | "true" | "yes") => Ok(true),
            Some(_) => Err(ApiError::bad_request(
                "invalid_query",
                format!("Query parameter {name:?} must be 1 or 0 (true or false)."),
            )),
        }
    }
}

/// Parses a non-negative whole number; values too big for 64 bits saturate.
fn whole_number(name: &str, text: &str, what: &str) -> Result<u64, ApiError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "Query parameter {name:?} must be a whole number {what}; got {:?}.",
                shorten(text)
            ),
        ));
    }
    Ok(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// At most 64 characters of something a client sent, for messages.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn limits_are_clamped_and_checked() {
        let q = |s: &str| {
            let req = TestRequest::with_uri(&format!("/jobs?{s}")).to_http_request();
            Query::parse(&req, &["limit", "project"])
        };
        assert_eq!(q("limit=20").unwrap().limit().unwrap(), Some(20));
        assert_eq!(q("limit=99999999999999999999999").unwrap().limit().unwrap(), Some(500));
        assert_eq!(q("").unwrap().limit().unwrap(), None);
        for bad in ["limit=0", "limit=-1", "limit=abc", "limit=", "limit=1.5"] {
            let err = q(bad).unwrap().limit().unwrap_err();
            assert_eq!((err.status.as_u16(), err.code), (400, "invalid_query"), "{bad}");
        }
        assert_eq!(q("colour=red").unwrap_err().code, "unknown_parameter");
        assert_eq!(q("limit=1&limit=2").unwrap_err().code, "invalid_query");
    }

    #[test]
    fn json_errors_tell_syntax_from_shape() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only the parse result matters here")]
        struct Body {
            name: String,
        }
        assert_eq!(parse_json::<Body>(b"{\"name\":").unwrap_err().status.as_u16(), 400);
        assert_eq!(parse_json::<Body>(b"{name}").unwrap_err().status.as_u16(), 400);
        assert_eq!(parse_json::<Body>(b"  ").unwrap_err().status.as_u16(), 400);
        let unknown = parse_json::<Body>(br#"{"name":"a","x":1}"#).unwrap_err();
        assert_eq!((unknown.status.as_u16(), unknown.code), (422, "invalid_body"));
        assert!(unknown.message.contains("unknown field `x`"), "{}", unknown.message);
        assert_eq!(parse_json::<Body>(br#"{"name":5}"#).unwrap_err().status.as_u16(), 422);
        assert!(parse_json::<Body>(br#"{"name":"a"}"#).is_ok());
    }
}
