//! `GET /jobs/{id}/log`: a job's log, streamed from its file in chunks.
//!
//! - Plain: `200` with the whole file as it is now (`Content-Length` set).
//! - Resume: `Range: bytes=N-` (or `bytes=N-M`) answers `206` with
//!   `Content-Range`; `?offset=N` answers `200` from byte N. Past the end:
//!   `416`. Every answer names its first byte in `X-Log-Offset`.
//! - Follow: `?follow=1` keeps the answer open and sends new output as the
//!   job writes it, until the job has ended and everything is sent. It starts
//!   from `offset` or a `Range` start, always answers `200` (the length is
//!   not known in advance), and the job's state at the start is in
//!   `X-Job-Status`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError, web};
use crafting_core::{Caller, CraftingTable};
use futures_util::Stream;
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::AppState;
use crate::error::ApiError;
use crate::gate::Auth;
use crate::input::Query;

/// Bytes read from the file per chunk sent.
const CHUNK: usize = 64 * 1024;

/// The first and, when given, last byte of a `Range: bytes=` header.
type ByteRange = (u64, Option<u64>);

/// `GET /jobs/{id}/log[?offset=N][&follow=1]`.
pub async fn stream(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(&req, &["offset", "follow"])?;
    let follow = q.flag("follow")?;
    let offset = q.offset("offset")?;
    let range = byte_range(req.headers())?;
    if offset.is_some() && range.is_some() {
        return Err(ApiError::bad_request(
            "invalid_range",
            "Give the starting byte either as ?offset=N or as a Range header, not both.",
        ));
    }

    let path = state.table.job_log_path(&caller, &id).await?;
    let job = state.table.job_status(&caller, &id).await?;
    let len = match tokio::fs::metadata(&path).await {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::error!(job_id = %job.id, error = %e, "job log cannot be read");
            return Err(ApiError::internal());
        }
    };

    let start = range.map(|r| r.0).or(offset).unwrap_or(0);
    // Resuming at the very end of a log is fine (nothing new yet); past it is not.
    let past_end = match range {
        Some(_) => start >= len && !(follow && start == len),
        None => start > len,
    };
    if past_end {
        let mut err = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!(
                "The log has {len} bytes, so it cannot be read from byte {start}; \
                 resume from a smaller offset."
            ),
        )
        .error_response();
        if let Ok(v) = format!("bytes */{len}").parse() {
            err.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(err);
    }

    let status_text = job.status.as_str();
    if follow {
        if matches!(range, Some((_, Some(_)))) {
            return Err(ApiError::bad_request(
                "invalid_range",
                "A followed log has no end; use 'Range: bytes=N-' or ?offset=N with follow=1.",
            ));
        }
        let body = follow_stream(
            state.table.clone(),
            caller,
            id.into_inner(),
            path,
            start,
            state.config.follow_poll,
        );
        let mut res = log_response(StatusCode::OK, start, status_text);
        res.insert_header(("x-accel-buffering", "no"));
        return Ok(res.streaming(body));
    }

    let (status, end) = match range {
        Some((_, Some(last))) => (StatusCode::PARTIAL_CONTENT, last.min(len - 1) + 1),
        Some((_, None)) => (StatusCode::PARTIAL_CONTENT, len),
        None => (StatusCode::OK, len),
    };
    let mut res = log_response(status, start, status_text);
    if status == StatusCode::PARTIAL_CONTENT {
        res.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{}/{len}", end - 1)));
    }
    let body = SizedStream::new(end - start, file_stream(path, start, end - start));
    Ok(res.body(body))
}

fn log_response(status: StatusCode, start: u64, job_status: &str) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.content_type("text/plain; charset=utf-8")
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-log-offset", start.to_string()))
        .insert_header(("x-job-status", job_status.to_owned()));
    res
}

/// Reads `Range: bytes=N-` or `bytes=N-M`. A header in another unit, with
/// several ranges, or with a suffix range is ignored as HTTP allows (the
/// whole log is sent); a `bytes=` range that does not parse is a 400.
fn byte_range(headers: &HeaderMap) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let bad = || {
        ApiError::bad_request(
            "invalid_range",
            "The Range header must look like 'bytes=N-' or 'bytes=N-M' with whole numbers, N <= M.",
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let Some(spec) = text.strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') || spec.starts_with('-') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| -> Result<u64, ApiError> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let first = number(first)?;
    let last = if last.trim().is_empty() { None } else { Some(number(last)?) };
    if last.is_some_and(|l| l < first) {
        return Err(bad());
    }
    Ok(Some((first, last)))
}

/// `len` bytes of the file from `start`, in chunks. A file that does not exist
/// (a queued job) is empty.
fn file_stream(
    path: PathBuf,
    start: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    struct Reader {
        path: PathBuf,
        file: Option<tokio::fs::File>,
        pos: u64,
        left: u64,
    }
    let init = Reader { path, file: None, pos: start, left: len };
    stream::try_unfold(init, |mut r| async move {
        if r.left == 0 {
            return Ok(None);
        }
        if r.file.is_none() {
            let mut f = tokio::fs::File::open(&r.path).await?;
            f.seek(io::SeekFrom::Start(r.pos)).await?;
            r.file = Some(f);
        }
        let want = (r.left.min(CHUNK as u64)) as usize;
        let chunk = read_chunk(r.file.as_mut().expect("opened above"), want).await?;
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the log file became shorter while it was sent",
            ));
        }
        r.pos += chunk.len() as u64;
        r.left -= chunk.len() as u64;
        Ok(Some((chunk, r)))
    })
}

async fn read_chunk(file: &mut tokio::fs::File, want: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(want);
    let n = file.read(&mut buf).await?;
    buf.truncate(n);
    Ok(buf.freeze())
}

/// The log from `start` on, then whatever the job writes, until the job has
/// ended and the file is sent to its end. Polls the file size and the job's
/// state every `poll`; stops quietly if the job disappears (its project was
/// deleted) and when the client goes away (the stream is dropped).
fn follow_stream(
    table: CraftingTable,
    caller: Caller,
    id: String,
    path: PathBuf,
    start: u64,
    poll: Duration,
) -> impl Stream<Item = Result<Bytes, io::Error>> + 'static {
    struct Follower {
        table: CraftingTable,
        caller: Caller,
        id: String,
        path: PathBuf,
        file: Option<tokio::fs::File>,
        pos: u64,
        /// Set once the job has ended: read to the end once more, then stop.
        ended: bool,
    }
    let init = Follower { table, caller, id, path, file: None, pos: start, ended: false };
    stream::try_unfold(init, move |mut f| async move {
        loop {
            if f.file.is_none() {
                match tokio::fs::File::open(&f.path).await {
                    Ok(mut file) => {
                        file.seek(io::SeekFrom::Start(f.pos)).await?;
                        f.file = Some(file);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(file) = f.file.as_mut() {
                let chunk = read_chunk(file, CHUNK).await?;
                if !chunk.is_empty() {
                    f.pos += chunk.len() as u64;
                    return Ok(Some((chunk, f)));
                }
            }
            if f.ended {
                return Ok(None);
            }
            // Nothing new: has the job ended? Its end state is recorded only
            // after the log is closed, so one more read gets everything.
            match f.table.job_status(&f.caller, &f.id).await {
                Ok(job) if job.status.is_terminal() => f.ended = true,
                Ok(_) => tokio::time::sleep(poll).await,
                Err(e) => {
                    tracing::debug!(job_id = %f.id, error = %e, "followed job went away");
                    return Ok(None);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn range(text: &str) -> Result<Option<ByteRange>, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(text).unwrap());
        byte_range(&h)
    }

    #[test]
    fn range_headers_are_read() {
        assert_eq!(byte_range(&HeaderMap::new()).unwrap(), None);
        assert_eq!(range("bytes=10-").unwrap(), Some((10, None)));
        assert_eq!(range("bytes=0-99").unwrap(), Some((0, Some(99))));
        assert_eq!(range("bytes=-5").unwrap(), None);
        assert_eq!(range("bytes=0-1,5-6").unwrap(), None);
        assert_eq!(range("items=0-1").unwrap(), None);
        for bad in ["bytes=x-", "bytes=5-2", "bytes=5", "bytes=+5-"] {
            assert_eq!(range(bad).unwrap_err().code, "invalid_range", "{bad}");
        }
    }

    #[actix_web::test]
    async fn file_stream_sends_the_asked_slice() {
        use futures_util::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let all: Vec<Bytes> =
            file_stream(path.clone(), 0, text.len() as u64).try_collect().await.unwrap();
        assert!(all.len() > 1, "a large file goes out in several chunks");
        assert_eq!(all.concat(), text.as_bytes());
        let part: Vec<Bytes> = file_stream(path.clone(), 5, 10).try_collect().await.unwrap();
        assert_eq!(part.concat(), &text.as_bytes()[5..15]);
        let missing: Vec<Bytes> =
            file_stream(dir.path().join("none"), 0, 0).try_collect().await.unwrap();
        assert!(missing.is_empty());
    }
}
