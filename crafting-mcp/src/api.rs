//! A small client of the crafting-table HTTP API.
//!
//! Every call answers the success body as JSON (with `"ok": true` removed) or
//! an [`ApiError`]. Answers are read with a size cap, path segments are
//! percent-encoded, and the bearer goes into a header marked sensitive; it
//! is never part of a URL, a log line or an error.

use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::{Map, Value, json};

use crate::config::{Bearer, Config};

/// Largest JSON answer read from the API; past it the call fails.
pub const MAX_JSON_BYTES: usize = 64 * 1024 * 1024;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with its error body.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's snake_case code.
        code: String,
        /// The API's sentence.
        message: String,
    },
    /// No connection could be made, or it broke before an answer came.
    #[error(
        "cannot reach the crafting-table API at {url} ({cause}); check CRAFTING_TABLE_BASE_URL \
         and that `crafting-table serve` is running there"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// The innermost cause, e.g. "Connection refused".
        cause: String,
    },
    /// The request took longer than the configured timeout.
    #[error("the crafting-table API at {url} did not answer within {secs} s")]
    Timeout {
        /// The base URL.
        url: String,
        /// The timeout.
        secs: u64,
    },
    /// An answer that is not the API's JSON, or is too large.
    #[error("unexpected answer from the crafting-table API at {url} (HTTP {status}): {detail}")]
    Unexpected {
        /// The base URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
    /// The tool's own arguments cannot make a valid request.
    #[error("{message}")]
    Invalid {
        /// Stable snake_case code.
        code: &'static str,
        /// A sentence the caller can act on.
        message: String,
    },
}

impl ApiError {
    /// A tool-argument error.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid { code, message: message.into() }
    }

    /// The stable code of this error: the API's own, or one of ours.
    pub fn code(&self) -> &str {
        match self {
            ApiError::Api { code, .. } => code,
            ApiError::Unreachable { .. } => "unreachable",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Unexpected { .. } => "unexpected_response",
            ApiError::Invalid { code, .. } => code,
        }
    }

    /// The HTTP status behind this error, when there was an answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. } | ApiError::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The body of the tool error result: `{"ok": false, "error", "code", "http_status"?}`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({"ok": false, "error": self.to_string(), "code": self.code()});
        if let Some(status) = self.http_status() {
            body["http_status"] = json!(status);
        }
        body
    }
}

/// A slice of a job log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSlice {
    /// Byte offset of the first byte in `bytes`.
    pub start: u64,
    /// The log's length in bytes when it was read.
    pub total: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Client of one crafting-table service with one token.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    base_text: String,
    token: Bearer,
    timeout: Duration,
}

impl Api {
    /// Builds the client; makes no request.
    pub fn new(config: &Config) -> Result<Api, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("crafting-table-mcp/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10).min(config.request_timeout))
            .timeout(config.request_timeout)
            .build()?;
        let base_text = config.base_url.as_str().trim_end_matches('/').to_owned();
        Ok(Api {
            http,
            base: config.base_url.clone(),
            base_text,
            token: config.token.clone(),
            timeout: config.request_timeout,
        })
    }

    /// The base URL, as shown in messages.
    pub fn base_url(&self) -> &str {
        &self.base_text
    }

    /// The URL of a route given as path segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `GET` with query parameters; `None` values are left out.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, Option<String>)],
    ) -> Result<Value, ApiError> {
        let mut url = self.url(segments);
        let given: Vec<(&str, &str)> =
            query.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))).collect();
        if !given.is_empty() {
            url.query_pairs_mut().extend_pairs(given);
        }
        self.json_call(Method::GET, url, None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        self.json_call(Method::POST, self.url(segments), Some(body)).await
    }

    /// `PUT` with a JSON body.
    pub async fn put(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        self.json_call(Method::PUT, self.url(segments), Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ApiError> {
        self.json_call(Method::DELETE, self.url(segments), None).await
    }

    /// The length of a job's log, from a one-byte range request.
    pub async fn log_len(&self, job_id: &str) -> Result<u64, ApiError> {
        let url = self.url(&["jobs", job_id, "log"]);
        let req = self.request(Method::GET, url.clone()).header(header::RANGE, "bytes=0-0");
        let res = self.send(req, &Method::GET, &url).await?;
        let status = res.status();
        match status {
            // An empty log cannot satisfy any range; its length is in `bytes */0`.
            StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE => {
                let total = content_range_total(res.headers());
                drop(res);
                total.ok_or_else(|| self.unexpected(status, "no usable Content-Range header"))
            }
            // A server that ignores ranges sends the whole log: its length is the answer.
            StatusCode::OK => res
                .content_length()
                .ok_or_else(|| self.unexpected(status, "no Content-Length on a log answer")),
            _ => Err(self.error_from(res).await),
        }
    }

    /// Bytes `start..end` of a job's log (fewer when the log is shorter).
    pub async fn log_range(
        &self,
        job_id: &str,
        start: u64,
        end: u64,
    ) -> Result<LogSlice, ApiError> {
        let url = self.url(&["jobs", job_id, "log"]);
        let want = end.saturating_sub(start);
        if want == 0 {
            return Ok(LogSlice { start, total: start, bytes: Vec::new() });
        }
        let range = format!("bytes={start}-{}", end - 1);
        let req = self.request(Method::GET, url.clone()).header(header::RANGE, range);
        let mut res = self.send(req, &Method::GET, &url).await?;
        let status = res.status();
        let (first, total) = match status {
            StatusCode::PARTIAL_CONTENT => {
                let total = content_range_total(res.headers())
                    .ok_or_else(|| self.unexpected(status, "no usable Content-Range header"))?;
                (start, total)
            }
            // Ranges ignored: the log comes from byte 0; keep only the asked part below.
            StatusCode::OK => (0, res.content_length().unwrap_or(end)),
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let total = content_range_total(res.headers()).unwrap_or(start);
                return Ok(LogSlice { start: total, total, bytes: Vec::new() });
            }
            _ => return Err(self.error_from(res).await),
        };
        // Read no more than asked, whatever the server sends.
        let mut bytes = Vec::with_capacity(want.min(1 << 20) as usize);
        let mut pos = first;
        while pos < end {
            let chunk = match res.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(&Method::GET, &url, e)),
            };
            let chunk_end = pos + chunk.len() as u64;
            if chunk_end > start {
                let from = start.saturating_sub(pos) as usize;
                let to = (end.min(chunk_end) - pos) as usize;
                bytes.extend_from_slice(&chunk[from..to]);
            }
            pos = chunk_end;
        }
        Ok(LogSlice { start, total, bytes })
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(self.token.expose())
    }

    async fn json_call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut req = self.request(method.clone(), url.clone());
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = self.send(req, &method, &url).await?;
        if !res.status().is_success() {
            return Err(self.error_from(res).await);
        }
        let status = res.status();
        let bytes = self.read_capped(res, &method, &url).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(mut map)) => {
                if map.get("ok") == Some(&Value::Bool(false)) {
                    return Err(api_error(status, map));
                }
                map.remove("ok");
                Ok(Value::Object(map))
            }
            Ok(_) => Err(self.unexpected(status, "the answer is JSON but not an object")),
            Err(e) => Err(self.unexpected(status, &format!("the answer is not JSON ({e})"))),
        }
    }

    async fn send(
        &self,
        req: RequestBuilder,
        method: &Method,
        url: &Url,
    ) -> Result<Response, ApiError> {
        let started = Instant::now();
        let res = req.send().await.map_err(|e| self.transport_error(method, url, e))?;
        tracing::debug!(
            %method,
            path = url.path(),
            status = res.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "api call"
        );
        Ok(res)
    }

    /// Turns a non-success answer into the API's error, or an unexpected one.
    async fn error_from(&self, res: Response) -> ApiError {
        let status = res.status();
        let url = res.url().clone();
        let bytes = match self.read_capped(res, &Method::GET, &url).await {
            Ok(bytes) => bytes,
            Err(e) => return e,
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) if map.contains_key("error") || map.contains_key("code") => {
                api_error(status, map)
            }
            _ => {
                let text = String::from_utf8_lossy(&bytes);
                let snippet: String = text.chars().take(200).collect();
                self.unexpected(status, &format!("not the API's error body: {snippet:?}"))
            }
        }
    }

    async fn read_capped(
        &self,
        mut res: Response,
        method: &Method,
        url: &Url,
    ) -> Result<Vec<u8>, ApiError> {
        let status = res.status();
        if res.content_length().is_some_and(|n| n > MAX_JSON_BYTES as u64) {
            return Err(self.unexpected(status, "the answer is larger than 64 MiB"));
        }
        let mut bytes = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_JSON_BYTES {
                        return Err(self.unexpected(status, "the answer is larger than 64 MiB"));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(bytes),
                Err(e) => return Err(self.transport_error(method, url, e)),
            }
        }
    }

    fn transport_error(&self, method: &Method, url: &Url, err: reqwest::Error) -> ApiError {
        tracing::debug!(%method, path = url.path(), error = %root_cause(&err), "api call failed");
        if err.is_timeout() {
            ApiError::Timeout { url: self.base_text.clone(), secs: self.timeout.as_secs() }
        } else {
            ApiError::Unreachable { url: self.base_text.clone(), cause: root_cause(&err) }
        }
    }

    fn unexpected(&self, status: StatusCode, detail: &str) -> ApiError {
        tracing::warn!(status = status.as_u16(), detail, "unexpected answer from the api");
        ApiError::Unexpected {
            url: self.base_text.clone(),
            status: status.as_u16(),
            detail: detail.to_owned(),
        }
    }
}

fn api_error(status: StatusCode, map: Map<String, Value>) -> ApiError {
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    ApiError::Api {
        status: status.as_u16(),
        code: text("code").unwrap_or_else(|| "http_".to_owned() + status.as_str()),
        message: text("error")
            .unwrap_or_else(|| format!("The API answered HTTP {status} without a message.")),
    }
}

/// The total length in `Content-Range: bytes a-b/N` or `bytes */N`.
fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    value.trim().strip_prefix("bytes ")?.rsplit_once('/')?.1.trim().parse().ok()
}

/// The innermost error message: "Connection refused" rather than "error sending request".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn api(base: &str) -> Api {
        let config = Config::from_lookup(|name| match name {
            crate::config::TOKEN_VAR => Some("secret-token".into()),
            crate::config::BASE_URL_VAR => Some(base.into()),
            _ => None,
        })
        .unwrap();
        Api::new(&config).unwrap()
    }

    #[test]
    fn path_segments_are_encoded_under_the_base_path() {
        let a = api("http://127.0.0.1:8810");
        assert_eq!(a.url(&["jobs", "abc", "log"]).as_str(), "http://127.0.0.1:8810/jobs/abc/log");
        assert_eq!(
            a.url(&["projects", "../admin/tokens"]).as_str(),
            "http://127.0.0.1:8810/projects/..%2Fadmin%2Ftokens"
        );
        let prefixed = api("http://127.0.0.1:8810/ct/");
        assert_eq!(prefixed.url(&["healthz"]).as_str(), "http://127.0.0.1:8810/ct/healthz");
        assert_eq!(prefixed.base_url(), "http://127.0.0.1:8810/ct");
    }

    #[test]
    fn content_range_totals_are_read() {
        let mut h = HeaderMap::new();
        assert_eq!(content_range_total(&h), None);
        h.insert(header::CONTENT_RANGE, HeaderValue::from_static("bytes 0-0/1234"));
        assert_eq!(content_range_total(&h), Some(1234));
        h.insert(header::CONTENT_RANGE, HeaderValue::from_static("bytes */0"));
        assert_eq!(content_range_total(&h), Some(0));
        h.insert(header::CONTENT_RANGE, HeaderValue::from_static("items 0-1/*"));
        assert_eq!(content_range_total(&h), None);
    }

    #[test]
    fn api_error_bodies_keep_message_and_code() {
        let map = json!({"ok": false, "error": "No such job.", "code": "not_found"});
        let Value::Object(map) = map else { unreachable!() };
        let err = api_error(StatusCode::NOT_FOUND, map);
        assert_eq!(err.code(), "not_found");
        assert_eq!(
            err.to_json(),
            json!({"ok": false, "error": "No such job.", "code": "not_found", "http_status": 404})
        );
    }

    #[tokio::test]
    async fn an_unreachable_service_is_named_in_the_error() {
        // Bind and drop to get a loopback port nobody listens on.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let base = format!("http://127.0.0.1:{port}");
        let err = api(&base).get(&["healthz"], &[]).await.unwrap_err();
        assert_eq!(err.code(), "unreachable");
        let text = err.to_string();
        assert!(text.contains(&base), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
    }
}
