//! `govulncheck -json`: a stream of pretty-printed JSON messages.
//!
//! `osv` messages describe advisories; `finding` messages tie one to the code
//! through a `trace` whose first frame is the vulnerable symbol and whose last
//! is the caller in this module. A trace whose first frame names a
//! `function` means the vulnerable code is called: that advisory becomes a
//! `cve` at `error` (the Go database gives no CVSS score). Advisories found
//! only at package or module level (imported or required, never called) are
//! reported at `info`, the way govulncheck itself lists them as
//! informational. One finding per advisory, at the work dir's `go.mod`,
//! emitted at the end of the log; the caller frames of up to 10 traces are
//! kept in `raw_json`. The fix is `bump <module> to <fixed_version>`
//! (`bump go to ...` for the standard library).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::finding::{Finding, Kind, Severity};
use crate::paths::PathMapper;
use crate::registry::{ParseContext, Session};

#[derive(Deserialize)]
struct Osv {
    id: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Deserialize)]
struct VulnFinding {
    osv: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    trace: Vec<Frame>,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    module: String,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    receiver: Option<String>,
    #[serde(default)]
    position: Option<Position>,
}

/// 1-based line and column (bytes), as Go's token positions count them.
#[derive(Deserialize)]
struct Position {
    #[serde(default)]
    filename: String,
    #[serde(default)]
    line: u32,
    #[serde(default)]
    column: u32,
}

#[derive(Default)]
struct Advisory {
    summary: String,
    aliases: Vec<String>,
    called: bool,
    module: Option<String>,
    fixed_version: Option<String>,
    traces: Vec<Value>,
    seen_finding: bool,
}

/// Collects govulncheck messages until the end of the log.
pub(crate) struct VulnSession {
    paths: PathMapper,
    advisories: HashMap<String, Advisory>,
    order: Vec<String>,
}

impl VulnSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        VulnSession { paths: PathMapper::new(ctx), advisories: HashMap::new(), order: Vec::new() }
    }

    fn entry(&mut self, id: &str) -> &mut Advisory {
        if !self.advisories.contains_key(id) {
            self.order.push(id.to_owned());
        }
        self.advisories.entry(id.to_owned()).or_default()
    }
}

fn describe(frame: &Frame) -> String {
    let func = match (&frame.receiver, &frame.function) {
        (Some(r), Some(f)) if !r.is_empty() => format!("{r}.{f}"),
        (_, Some(f)) => f.clone(),
        _ => frame.package.clone().unwrap_or_else(|| frame.module.clone()),
    };
    match &frame.position {
        Some(p) if !p.filename.is_empty() => {
            format!("{func} ({}:{}:{})", p.filename, p.line, p.column)
        }
        _ => func,
    }
}

impl Session for VulnSession {
    fn json(&mut self, doc: &Value, _out: &mut Vec<Finding>) {
        if let Some(osv) = doc.get("osv").filter(|o| o.is_object()) {
            let Ok(osv) = Osv::deserialize(osv) else { return };
            let entry = self.entry(&osv.id);
            entry.summary = osv.summary;
            entry.aliases = osv.aliases;
            return;
        }
        let Some(found) = doc.get("finding") else { return };
        let Ok(found) = VulnFinding::deserialize(found) else { return };
        let entry = self.entry(&found.osv);
        entry.seen_finding = true;
        let first = found.trace.first();
        let called = first.is_some_and(|f| f.function.as_deref().is_some_and(|f| !f.is_empty()));
        entry.called |= called;
        if entry.module.is_none() {
            entry.module = first.map(|f| f.module.clone()).filter(|m| !m.is_empty());
        }
        if entry.fixed_version.is_none() {
            entry.fixed_version = found.fixed_version.filter(|v| !v.is_empty());
        }
        if called && entry.traces.len() < 10 {
            let frames: Vec<String> = found.trace.iter().map(describe).collect();
            entry.traces.push(json!(frames));
        }
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        let go_mod = self.paths.map("go.mod");
        for id in std::mem::take(&mut self.order) {
            let Some(a) = self.advisories.remove(&id) else { continue };
            if !a.seen_finding {
                continue;
            }
            let severity = if a.called { Severity::Error } else { Severity::Info };
            let fix = match (&a.module, &a.fixed_version) {
                (Some(m), Some(v)) if m == "stdlib" || m == "toolchain" => {
                    Some(format!("bump go to {}", v.trim_start_matches('v')))
                }
                (Some(m), Some(v)) => Some(format!("bump {m} to {v}")),
                _ => None,
            };
            let mut message = if a.summary.is_empty() { id.clone() } else { a.summary.clone() };
            if let Some(caller) = a.traces.first().and_then(|t| t.as_array()).and_then(|t| t.last())
            {
                message.push_str(&format!("\ncalled from {}", caller.as_str().unwrap_or("")));
            } else if !a.called {
                message.push_str("\nimported or required, but not called");
            }
            let raw = json!({
                "osv": id,
                "aliases": a.aliases,
                "module": a.module,
                "fixed_version": a.fixed_version,
                "called": a.called,
                "traces": a.traces,
            });
            out.push(
                Finding::new(Kind::Cve, severity, "govulncheck", id, message)
                    .at(go_mod.clone(), None, None)
                    .with_fix(fix)
                    .with_raw(raw),
            );
        }
    }
}
