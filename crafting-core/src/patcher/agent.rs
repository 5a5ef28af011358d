//! Asking an agent for a fix: a model behind an OpenAI-compatible or an
//! Anthropic HTTP API, or a local command.
//!
//! [`ask`] renders the request with [`prompt`], sends it, retries what may
//! pass on a second try (timeouts, connection failures, HTTP 429 and 5xx)
//! with exponential backoff, and reads the answer with [`parse_reply`] into
//! an [`AgentReply`] whose `diff` is a unified diff against the repository
//! root.
//!
//! # The HTTP agents
//!
//! `openai` posts `{model, messages: [system, user], temperature: 0}` to
//! `<url>/chat/completions` (a URL already ending in `/chat/completions` is
//! used as is) with `Authorization: Bearer <token>` when a token is set, and
//! reads `choices[0].message.content`. It sends no `response_format`: many
//! OpenAI-compatible servers reject or ignore it, and [`parse_reply`] copes
//! with prose and fences around the JSON anyway.
//!
//! `anthropic` posts `{model, max_tokens, system, messages: [user]}` to
//! `<url>/v1/messages` with `x-api-key` and `anthropic-version`, and joins
//! the `text` blocks of `content`.
//!
//! A reply cut off at the model's output limit (`finish_reason: length`,
//! `stop_reason: max_tokens`) is an error rather than a half diff.
//!
//! # The command agent
//!
//! With [`AgentKind::Command`] the configured command runs through
//! `/bin/sh -c` in a new process group. It gets the [`AgentRequest`] as JSON
//! on stdin and prints its reply on stdout, ideally
//! `{"diff": "...", "explanation": "...", "confidence": 0.8}`; any shape
//! [`parse_reply`] accepts will do. At most [`MAX_REPLY_BYTES`] of stdout are
//! kept; stderr is kept in part and quoted when the command fails. A non-zero
//! exit is an error naming the exit code or signal. When the timeout passes,
//! the whole process group gets SIGKILL.
//!
//! The command's environment is the service's own **minus every variable
//! whose name starts with `CRAFTING_`**, so forge tokens, the agent token and
//! the rest of the service's configuration never reach it. A command that
//! needs a secret of its own reads it from a variable with another prefix or
//! from a file.
//!
//! # Secrets
//!
//! The token only ever travels in a request header. `AgentConfig`'s `Debug`
//! says whether a token is set, never what it is, and every error message is
//! scrubbed of it, even where a server echoes it back in a body.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::model::Finding;
use crate::validate::redact_credentials;

/// Where the OpenAI agent goes when no URL is configured.
pub const DEFAULT_OPENAI_URL: &str = "https://api.openai.com/v1";
/// Where the Anthropic agent goes when no URL is configured.
pub const DEFAULT_ANTHROPIC_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header sent with every Anthropic request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` of Anthropic requests: room for a diff of a few hundred lines.
pub const ANTHROPIC_MAX_TOKENS: u32 = 8192;
/// Bytes of an agent's answer (HTTP body or command stdout) read at most.
pub const MAX_REPLY_BYTES: usize = 8 << 20;
/// Lines of code shown on each side of the finding's line.
pub const CONTEXT_RADIUS: u32 = 20;

/// Bytes of a command's stderr kept for the error message.
const MAX_STDERR_BYTES: usize = 64 << 10;
/// Characters of a body, reply or stderr quoted in an error.
const QUOTE_CHARS: usize = 300;
/// Object starts tried when looking for the reply inside prose.
const MAX_OBJECT_STARTS: usize = 1000;
/// Object starts tried again with raw line breaks escaped.
const MAX_REPAIRS: usize = 20;
/// The longest single wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Which kind of agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// An OpenAI-compatible chat completions API.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// A local command reading the request on stdin.
    Command,
}

impl AgentKind {
    /// Parses `openai`, `anthropic` or `command`.
    pub fn parse(s: &str) -> Option<AgentKind> {
        Some(match s {
            "openai" => AgentKind::OpenAi,
            "anthropic" => AgentKind::Anthropic,
            "command" => AgentKind::Command,
            _ => return None,
        })
    }

    /// The name used in configuration and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::OpenAi => "openai",
            AgentKind::Anthropic => "anthropic",
            AgentKind::Command => "command",
        }
    }
}

/// How to reach the agent.
#[derive(Clone)]
pub struct AgentConfig {
    /// Which kind of agent.
    pub kind: AgentKind,
    /// API base for the HTTP kinds; [`DEFAULT_OPENAI_URL`] or
    /// [`DEFAULT_ANTHROPIC_URL`] when unset.
    pub url: Option<String>,
    /// Bearer token (OpenAI) or API key (Anthropic); no auth header when unset.
    pub token: Option<String>,
    /// Model name; required by the HTTP kinds.
    pub model: Option<String>,
    /// Shell command; required by [`AgentKind::Command`].
    pub command: Option<String>,
    /// How long one attempt may take, answer included.
    pub timeout: Duration,
    /// Further attempts after a failure that may pass on a second try.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub backoff: Duration,
}

impl AgentConfig {
    /// A configuration with no URL, token, model or command, a 120 s timeout,
    /// 2 retries and a 1 s backoff.
    pub fn new(kind: AgentKind) -> AgentConfig {
        AgentConfig {
            kind,
            url: None,
            token: None,
            model: None,
            command: None,
            timeout: Duration::from_secs(120),
            retries: 2,
            backoff: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(redact_credentials))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("command", &self.command)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// Everything the agent is told about one finding. It is also the JSON a
/// command agent reads on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// Project name.
    pub project: String,
    /// The project's git URL; the caller strips credentials from it.
    pub git_url: String,
    /// The commit the finding was seen at.
    pub sha: String,
    /// The subproject's language.
    pub language: String,
    /// The subproject's path in the repository (`.` for the root).
    pub subproject: String,
    /// The recipe that reported the finding.
    pub recipe: String,
    /// The recipe's shell command.
    pub command: String,
    /// What to fix.
    pub finding: FindingBrief,
    /// The code around the finding, when it has a file and a line.
    pub context: Option<Context>,
    /// 1 for the first try at this finding.
    pub attempt_number: u32,
    /// Earlier tries at this finding and what became of them.
    pub previous: Vec<PreviousAttempt>,
}

/// The parts of a finding an agent needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingBrief {
    /// `lint`, `cve`, `test_fail` or `recipe_fail`.
    pub kind: String,
    /// `info`, `warn`, `error` or `critical`.
    pub severity: String,
    /// The tool that reported it.
    pub tool: String,
    /// Path relative to the repository root.
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<u32>,
    /// 1-based column in characters.
    pub column: Option<u32>,
    /// Rule id, advisory id or test name.
    pub code: String,
    /// The tool's message.
    pub message: String,
    /// The tool's own proposed fix, when it has one.
    pub suggested_fix: Option<String>,
}

impl From<&Finding> for FindingBrief {
    fn from(f: &Finding) -> FindingBrief {
        FindingBrief {
            kind: f.kind.as_str().to_owned(),
            severity: f.severity.as_str().to_owned(),
            tool: f.tool.clone(),
            file: f.file.clone(),
            line: f.line,
            column: f.column,
            code: f.code.clone(),
            message: f.message.clone(),
            suggested_fix: f.suggested_fix.clone(),
        }
    }
}

/// A window of one file's lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Path relative to the repository root.
    pub path: String,
    /// 1-based number of the first line in `text`.
    pub first_line: u32,
    /// 1-based number of the last line in `text`.
    pub last_line: u32,
    /// The lines, each ending in `\n`.
    pub text: String,
}

impl Context {
    /// The lines `line - radius ..= line + radius` of `content`, cut to the
    /// file's bounds. `None` when the file has no such line.
    pub fn around(path: &str, content: &str, line: u32, radius: u32) -> Option<Context> {
        let lines: Vec<&str> = content.split_inclusive('\n').collect();
        if line == 0 || line as usize > lines.len() {
            return None;
        }
        let first = line.saturating_sub(radius).max(1);
        let last = line.saturating_add(radius).min(lines.len() as u32);
        let mut text: String = lines[first as usize - 1..last as usize].concat();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Some(Context { path: path.to_owned(), first_line: first, last_line: last, text })
    }
}

/// An earlier try and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousAttempt {
    /// The diff that was tried.
    pub diff: String,
    /// What happened: did not apply, the recipe still failed, ...
    pub outcome: String,
}

/// What the agent proposes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentReply {
    /// A unified diff against the repository root, ending in a newline.
    pub diff: String,
    /// The agent's words on the change; empty when it gave none.
    pub explanation: String,
    /// The agent's own confidence, within 0..=1, when it gave one.
    pub confidence: Option<f64>,
}

/// Why no fix came back.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A required setting is missing.
    #[error("the agent is not configured: {0}")]
    Config(String),
    /// No complete answer within the timeout.
    #[error("the {agent} agent did not answer within {secs} s ({attempts} attempt(s))")]
    Timeout {
        /// `openai`, `anthropic` or `command`.
        agent: &'static str,
        /// The timeout of one attempt, in seconds (rounded up).
        secs: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection failed.
    #[error("could not reach the {agent} agent at {endpoint} ({attempts} attempt(s)): {message}")]
    Connect {
        /// `openai` or `anthropic`.
        agent: &'static str,
        /// The URL tried, credentials removed.
        endpoint: String,
        /// What failed.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The API answered with a status other than 2xx.
    #[error("the {agent} agent answered HTTP {status} ({attempts} attempt(s)): {body}")]
    Status {
        /// `openai` or `anthropic`.
        agent: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The request could not be sent for another reason (a malformed URL, ...).
    #[error("the request to the {agent} agent failed: {message}")]
    Request {
        /// `openai` or `anthropic`.
        agent: &'static str,
        /// What failed.
        message: String,
    },
    /// The answer is not shaped as the API documents.
    #[error("the {agent} agent's answer is not what its API documents: {message}")]
    BadResponse {
        /// `openai` or `anthropic`.
        agent: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The model stopped at its output limit, so the reply is cut short.
    #[error("the {agent} agent hit its output limit before finishing the reply")]
    Truncated {
        /// `openai` or `anthropic`.
        agent: &'static str,
    },
    /// The answer is longer than [`MAX_REPLY_BYTES`].
    #[error("the {agent} agent's answer is longer than {limit} bytes")]
    TooLarge {
        /// `openai`, `anthropic` or `command`.
        agent: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The agent command could not be started.
    #[error("could not start the agent command: {0}")]
    Spawn(#[source] io::Error),
    /// Talking to the agent command failed.
    #[error("talking to the agent command failed: {0}")]
    Io(#[source] io::Error),
    /// The agent command ended unsuccessfully.
    #[error("the agent command failed with {status}; stderr: {stderr:?}")]
    Exit {
        /// `exit code N` or `signal N`.
        status: String,
        /// The exit code, when it exited rather than being killed.
        code: Option<i32>,
        /// The end of what it wrote on stderr.
        stderr: String,
    },
    /// The reply has no diff that could be applied.
    #[error("the agent's reply has no usable diff ({reason}): {quote:?}")]
    NoDiff {
        /// Why the reply was refused.
        reason: &'static str,
        /// The start of the reply, or its explanation.
        quote: String,
    },
}

impl AgentError {
    /// True for failures that may pass on a second try: timeouts, connection
    /// failures, HTTP 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            AgentError::Timeout { .. } | AgentError::Connect { .. } => true,
            AgentError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    fn with_attempts(mut self, n: u32) -> AgentError {
        if let AgentError::Timeout { attempts, .. }
        | AgentError::Connect { attempts, .. }
        | AgentError::Status { attempts, .. } = &mut self
        {
            *attempts = n;
        }
        self
    }
}

/// Asks the configured agent for a fix of `req`'s finding.
pub async fn ask(cfg: &AgentConfig, req: &AgentRequest) -> Result<AgentReply, AgentError> {
    let text = match cfg.kind {
        AgentKind::OpenAi | AgentKind::Anthropic => {
            let (system, user) = prompt(req);
            let http = HttpAgent::new(cfg)?;
            with_retries(cfg, async || http.send(&system, &user).await).await?
        }
        AgentKind::Command => {
            let command =
                cfg.command.as_deref().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
                    AgentError::Config("the command agent needs a command to run".into())
                })?;
            let input = serde_json::to_vec(req).expect("a request always serialises");
            let env = command_env(std::env::vars_os());
            with_retries(cfg, async || run_command(command, &input, &env, cfg.timeout).await)
                .await?
        }
    };
    parse_reply(&text)
}

/// Runs `attempt` once, then again after a doubling wait while it fails in a
/// way that may pass, at most `cfg.retries` more times.
async fn with_retries(
    cfg: &AgentConfig,
    mut attempt: impl AsyncFnMut() -> Result<String, AgentError>,
) -> Result<String, AgentError> {
    let mut made = 0;
    loop {
        made += 1;
        match attempt().await {
            Ok(text) => return Ok(text),
            Err(e) if e.is_retryable() && made <= cfg.retries => {
                let wait = cfg.backoff.saturating_mul(1 << (made - 1).min(16)).min(MAX_BACKOFF);
                tracing::warn!(
                    agent = cfg.kind.as_str(),
                    attempt = made,
                    wait_ms = wait.as_millis() as u64,
                    error = %e,
                    "agent attempt failed, trying again"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.with_attempts(made)),
        }
    }
}

/// The system and user messages for `req`.
pub fn prompt(req: &AgentRequest) -> (String, String) {
    let system = "\
You fix one problem in a software repository. You are given a finding that a tool \
reported, the code around it and facts about the project.

Reply with one JSON object and nothing else:
{\"diff\": \"<unified diff against the repository root, paths a/<path> and b/<path>>\", \
\"explanation\": \"<one or two sentences on what you changed and why>\", \
\"confidence\": <a number from 0 to 1>}

Rules:
- Change as little as possible to fix the finding, and keep the code's style.
- Do not touch any file other than those the fix needs.
- The diff must apply with `git apply` at the repository root: `--- a/<path>` and \
`+++ b/<path>` headers, hunk headers with correct line counts, and context lines \
copied exactly from the file.
- If you cannot fix the finding safely, reply with an empty diff and say why in the \
explanation."
        .to_owned();

    let f = &req.finding;
    let mut user = String::new();
    user.push_str(&format!("Project: {} at commit {}\n", req.project, req.sha));
    user.push_str(&format!("Subproject: {} ({})\n", req.subproject, req.language));
    user.push_str(&format!("Recipe {:?} runs: {}\n\n", req.recipe, req.command));

    user.push_str("Finding\n");
    user.push_str(&format!("- kind: {}, severity: {}, tool: {}\n", f.kind, f.severity, f.tool));
    if let Some(file) = &f.file {
        let mut at = file.clone();
        if let Some(line) = f.line {
            at.push_str(&format!(":{line}"));
            if let Some(column) = f.column {
                at.push_str(&format!(":{column}"));
            }
        }
        user.push_str(&format!("- location: {at}\n"));
    }
    user.push_str(&format!("- code: {}\n", f.code));
    user.push_str(&format!("- message:\n{}\n", fenced(&f.message, "")));
    if let Some(fix) = &f.suggested_fix {
        user.push_str(&format!("- the tool suggests:\n{}\n", fenced(fix, "")));
    }

    if let Some(ctx) = &req.context {
        user.push_str(&format!(
            "\nCode of {} (lines {} to {}, numbered; the numbers are not part of the file):\n",
            ctx.path, ctx.first_line, ctx.last_line
        ));
        user.push_str(&fenced(&numbered(ctx), ""));
        user.push('\n');
    }

    if !req.previous.is_empty() {
        user.push_str(&format!(
            "\nThis is attempt {}. Earlier attempts failed; do not repeat them.\n",
            req.attempt_number
        ));
        for (i, p) in req.previous.iter().enumerate() {
            user.push_str(&format!("\nAttempt {}: {}\n", i + 1, p.outcome));
            user.push_str(&fenced(&p.diff, "diff"));
            user.push('\n');
        }
    }

    user.push_str("\nReply with the JSON object only.\n");
    (system, user)
}

/// The context's lines, each prefixed with its number.
fn numbered(ctx: &Context) -> String {
    let width = ctx.last_line.max(ctx.first_line).to_string().len();
    let mut out = String::new();
    for (i, line) in ctx.text.lines().enumerate() {
        let n = ctx.first_line as usize + i;
        out.push_str(&format!("{n:>width$} | {line}\n"));
    }
    out
}

/// `text` in a code fence longer than any run of backticks inside it.
fn fenced(text: &str, lang: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let body = text.strip_suffix('\n').unwrap_or(text);
    format!("{fence}{lang}\n{body}\n{fence}")
}

/// Reads a fix out of an agent's reply.
///
/// Accepted, in this order: a JSON object with a `diff` string anywhere in
/// the text (alone, inside a code fence, or with prose around it; the
/// outermost such object wins), also when the model wrote raw line breaks
/// inside its strings; failing that, a fenced ```` ```diff ```` or
/// ```` ```patch ```` block (or an unlabelled fence holding a unified diff),
/// taken with an empty explanation. `confidence` may be a number or a
/// numeric string (`"0.8"`, `"80%"`) and is clamped to 0..=1. A diff that is
/// itself wrapped in a fence is unwrapped, and a trailing newline is added.
pub fn parse_reply(text: &str) -> Result<AgentReply, AgentError> {
    let object = find_object(text).or_else(|| find_repaired_object(text));
    if let Some(obj) = object {
        let diff = obj.get("diff").and_then(Value::as_str).unwrap_or_default();
        let explanation =
            obj.get("explanation").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
        let confidence = obj.get("confidence").and_then(confidence_of);
        let quote = if explanation.is_empty() { quote(text) } else { quote(&explanation) };
        let diff = checked_diff(diff, quote)?;
        return Ok(AgentReply { diff, explanation, confidence });
    }
    for block in fences(text) {
        let is_diff_lang = matches!(block.lang, "diff" | "patch" | "udiff");
        if is_diff_lang || block.lang.is_empty() && looks_like_diff(block.body) {
            let diff = checked_diff(block.body, quote(text))?;
            return Ok(AgentReply { diff, explanation: String::new(), confidence: None });
        }
    }
    Err(AgentError::NoDiff {
        reason: "found neither a JSON object with a diff nor a fenced diff",
        quote: quote(text),
    })
}

/// The first object in `text`, by starting position, that parses and has a
/// `diff` string or null.
fn find_object(text: &str) -> Option<serde_json::Map<String, Value>> {
    let starts = text.match_indices('{').map(|(i, _)| i).take(MAX_OBJECT_STARTS);
    starts.into_iter().find_map(|start| object_at(&text[start..]))
}

/// Like [`find_object`] once raw line breaks inside strings are escaped,
/// trying only objects that open a line: the repair has to start outside
/// any string, and prose before the object may hold a lone quote.
fn find_repaired_object(text: &str) -> Option<serde_json::Map<String, Value>> {
    let opens_line =
        |i: &usize| text[..*i].rsplit('\n').next().is_some_and(|s| s.trim().is_empty());
    let starts = text.match_indices('{').map(|(i, _)| i).filter(opens_line).take(MAX_REPAIRS);
    starts.into_iter().find_map(|start| object_at(&escape_raw_controls(&text[start..])))
}

/// The object `text` starts with, when it has a `diff` string or null.
fn object_at(text: &str) -> Option<serde_json::Map<String, Value>> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    match stream.next() {
        Some(Ok(Value::Object(obj)))
            if matches!(obj.get("diff"), Some(Value::String(_) | Value::Null)) =>
        {
            Some(obj)
        }
        _ => None,
    }
}

/// `text` with raw line breaks and tabs inside JSON strings escaped, which
/// models write more often than they should.
fn escape_raw_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                '\n' => {
                    out.push_str("\\n");
                    continue;
                }
                '\r' => {
                    out.push_str("\\r");
                    continue;
                }
                '\t' => {
                    out.push_str("\\t");
                    continue;
                }
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

fn confidence_of(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let s = s.trim();
            match s.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
                None => s.parse::<f64>().ok()?,
            }
        }
        _ => return None,
    };
    if n.is_nan() { None } else { Some(n.clamp(0.0, 1.0)) }
}

/// The diff made ready to apply, or why it cannot be.
fn checked_diff(diff: &str, quote: String) -> Result<String, AgentError> {
    let mut diff = diff;
    // Some models fence the diff even inside the JSON string.
    let unfenced;
    if diff.trim_start().starts_with("```")
        && let Some(block) = fences(diff).into_iter().next()
    {
        unfenced = block.body.to_owned();
        diff = &unfenced;
    }
    if diff.trim().is_empty() {
        return Err(AgentError::NoDiff { reason: "the diff is empty", quote });
    }
    if !looks_like_diff(diff) {
        return Err(AgentError::NoDiff { reason: "the diff is not a unified diff", quote });
    }
    let start = diff.len() - diff.trim_start_matches(['\n', '\r']).len();
    let mut out = diff[start..].to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// True when `text` has the file headers of a unified diff.
fn looks_like_diff(text: &str) -> bool {
    let has = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
    has("diff --git ") || has("--- ") && has("+++ ")
}

struct Fence<'a> {
    lang: &'a str,
    body: &'a str,
}

/// The fenced code blocks of a Markdown text, in order. An unclosed fence
/// runs to the end of the text.
fn fences(text: &str) -> Vec<Fence<'_>> {
    let mut out = Vec::new();
    let mut open: Option<(usize, &str, usize)> = None; // (ticks, lang, body start)
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let ticks = trimmed.len() - trimmed.trim_start_matches('`').len();
        match open {
            None if ticks >= 3 => {
                let lang = trimmed[ticks..].split_whitespace().next().unwrap_or("");
                open = Some((ticks, lang, offset + line.len()));
            }
            Some((need, lang, start)) if ticks >= need && trimmed.len() == ticks => {
                out.push(Fence { lang, body: &text[start..offset] });
                open = None;
            }
            _ => {}
        }
        offset += line.len();
    }
    if let Some((_, lang, start)) = open {
        out.push(Fence { lang, body: &text[start.min(text.len())..] });
    }
    out
}

/// The start of `text`, trimmed, for error messages.
fn quote(text: &str) -> String {
    shorten(text.trim(), QUOTE_CHARS)
}

pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max).collect();
    s.push('…');
    s
}

/// `text` with URL credentials and every occurrence of `secret` replaced.
pub(super) fn mask(text: &str, secret: Option<&str>) -> String {
    let text = redact_credentials(text);
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text,
    }
}

/// One HTTP agent, ready to send.
struct HttpAgent<'a> {
    cfg: &'a AgentConfig,
    agent: &'static str,
    endpoint: String,
    model: &'a str,
    client: reqwest::Client,
}

impl<'a> HttpAgent<'a> {
    fn new(cfg: &'a AgentConfig) -> Result<HttpAgent<'a>, AgentError> {
        let agent = cfg.kind.as_str();
        let model =
            cfg.model.as_deref().filter(|m| !m.trim().is_empty()).ok_or_else(|| {
                AgentError::Config(format!("the {agent} agent needs a model name"))
            })?;
        let endpoint = match cfg.kind {
            AgentKind::OpenAi => openai_endpoint(cfg.url.as_deref().unwrap_or(DEFAULT_OPENAI_URL)),
            _ => anthropic_endpoint(cfg.url.as_deref().unwrap_or(DEFAULT_ANTHROPIC_URL)),
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("crafting-table/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AgentError::Request { agent, message: mask(&chain(&e), None) })?;
        Ok(HttpAgent { cfg, agent, endpoint, model, client })
    }

    /// One attempt: the reply text, or why there is none.
    async fn send(&self, system: &str, user: &str) -> Result<String, AgentError> {
        let secs = self.cfg.timeout.as_secs_f64().ceil() as u64;
        let timed_out = || AgentError::Timeout { agent: self.agent, secs, attempts: 1 };
        tokio::time::timeout(self.cfg.timeout, self.exchange(system, user))
            .await
            .map_err(|_| timed_out())?
    }

    async fn exchange(&self, system: &str, user: &str) -> Result<String, AgentError> {
        let token = self.cfg.token.as_deref();
        let mut request = self.client.post(&self.endpoint);
        let body = match self.cfg.kind {
            AgentKind::OpenAi => {
                if let Some(t) = token {
                    request = request.bearer_auth(t);
                }
                json!({
                    "model": self.model,
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": user},
                    ],
                    "temperature": 0,
                })
            }
            _ => {
                if let Some(t) = token {
                    request = request.header("x-api-key", t);
                }
                request = request.header("anthropic-version", ANTHROPIC_VERSION);
                json!({
                    "model": self.model,
                    "max_tokens": ANTHROPIC_MAX_TOKENS,
                    "system": system,
                    "messages": [{"role": "user", "content": user}],
                })
            }
        };
        let mut response = request.json(&body).send().await.map_err(|e| self.failed(&e))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failed(&e))? {
            if bytes.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(AgentError::TooLarge { agent: self.agent, limit: MAX_REPLY_BYTES });
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(AgentError::Status {
                agent: self.agent,
                status: status.as_u16(),
                body: mask(&shorten(text.trim(), QUOTE_CHARS), token),
                attempts: 1,
            });
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            self.bad(format!("the body is not JSON ({e}): {:?}", shorten(text.trim(), QUOTE_CHARS)))
        })?;
        match self.cfg.kind {
            AgentKind::OpenAi => self.openai_text(&value),
            _ => self.anthropic_text(&value),
        }
    }

    /// `choices[0].message.content`.
    fn openai_text(&self, value: &Value) -> Result<String, AgentError> {
        let choice =
            value.pointer("/choices/0").ok_or_else(|| self.bad("it has no choices[0]".into()))?;
        if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
            return Err(AgentError::Truncated { agent: self.agent });
        }
        let message = choice.get("message");
        match message.and_then(|m| m.get("content")).and_then(Value::as_str) {
            Some(text) => Ok(text.to_owned()),
            None => match message.and_then(|m| m.get("refusal")).and_then(Value::as_str) {
                Some(why) => Err(self.bad(format!("the model refused: {}", quote(why)))),
                None => Err(self.bad("choices[0].message.content is not a string".into())),
            },
        }
    }

    /// The `text` blocks of `content`, joined.
    fn anthropic_text(&self, value: &Value) -> Result<String, AgentError> {
        if value.get("stop_reason").and_then(Value::as_str) == Some("max_tokens") {
            return Err(AgentError::Truncated { agent: self.agent });
        }
        let blocks = value
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| self.bad("it has no content list".into()))?;
        let texts: Vec<&str> = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        if texts.is_empty() {
            return Err(self.bad("its content has no text block".into()));
        }
        Ok(texts.concat())
    }

    fn bad(&self, message: String) -> AgentError {
        AgentError::BadResponse { agent: self.agent, message: mask(&message, self.token()) }
    }

    fn token(&self) -> Option<&str> {
        self.cfg.token.as_deref()
    }

    /// A reqwest failure as an error that says whether a retry may help.
    fn failed(&self, e: &reqwest::Error) -> AgentError {
        let message = mask(&chain(e), self.token());
        if e.is_timeout() {
            let secs = self.cfg.timeout.as_secs_f64().ceil() as u64;
            AgentError::Timeout { agent: self.agent, secs, attempts: 1 }
        } else if e.is_connect() || e.is_request() || e.is_body() {
            AgentError::Connect {
                agent: self.agent,
                endpoint: redact_credentials(&self.endpoint),
                message,
                attempts: 1,
            }
        } else {
            AgentError::Request { agent: self.agent, message }
        }
    }
}

/// An error and its causes on one line; reqwest's own message is terse.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// `<base>/chat/completions`, unless the base already ends with it.
fn openai_endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_owned()
    } else {
        format!("{base}/chat/completions")
    }
}

/// `<base>/v1/messages`; a base ending in `/v1` or `/v1/messages` is taken as meant.
fn anthropic_endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/messages") {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

/// The environment of a command agent: `vars` without any `CRAFTING_*` variable.
fn command_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.into_iter().filter(|(k, _)| !k.as_bytes().starts_with(b"CRAFTING_")).collect()
}

/// Kills a process group when dropped: on timeout, on cancellation, and to
/// take down anything a finished command left running.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.filter(|&g| g > 1) {
            // SAFETY: killpg(2) has no memory-safety preconditions; a group
            // that is already gone only yields ESRCH.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
    }
}

/// Runs `command` through `/bin/sh -c` in a new process group with exactly
/// `env`, feeding `input` on stdin; returns its stdout.
async fn run_command(
    command: &str,
    input: &[u8],
    env: &[(OsString, OsString)],
    timeout: Duration,
) -> Result<String, AgentError> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(AgentError::Spawn)?;
    let group = GroupKill(child.id().map(|p| p as i32));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let feed = async move {
        let Some(mut stdin) = stdin else { return Ok(()) };
        // A command may answer without reading all of its input.
        match stdin.write_all(input).await {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    };
    let out = Captured::default();
    let err = Captured::default();
    let readers = (
        tokio::spawn(out.clone().fill(stdout, MAX_REPLY_BYTES)),
        tokio::spawn(err.clone().fill(stderr, MAX_STDERR_BYTES)),
    );
    let run = async {
        let (fed, status) = tokio::join!(feed, child.wait());
        fed?;
        status
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    // The command has ended (or timed out); output still in the pipes is
    // read for a moment, then the group goes, closing pipes its leftovers
    // held open. A process that left the group with the pipe open cannot
    // hold the reply back past that moment either.
    let drained = async {
        let _ = readers.0.await;
        let _ = readers.1.await;
    };
    let drained = tokio::time::timeout(DRAIN_GRACE, drained).await.is_ok();
    drop(group);
    if !drained {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = match outcome {
        Ok(result) => result.map_err(AgentError::Io)?,
        Err(_) => {
            let _ = child.wait().await;
            let secs = timeout.as_secs_f64().ceil() as u64;
            return Err(AgentError::Timeout { agent: "command", secs, attempts: 1 });
        }
    };
    let (out, out_overflow) = out.take();
    let (err, _) = err.take();

    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let described = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "an unknown status".to_owned(),
        };
        let stderr = String::from_utf8_lossy(&err);
        let stderr = stderr.trim();
        let tail: String = {
            let n = stderr.chars().count();
            let skip = n.saturating_sub(QUOTE_CHARS * 4);
            stderr.chars().skip(skip).collect()
        };
        return Err(AgentError::Exit { status: described, code: status.code(), stderr: tail });
    }
    if out_overflow {
        return Err(AgentError::TooLarge { agent: "command", limit: MAX_REPLY_BYTES });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// How long output still in a command's pipes is read after it exits.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What has been read from one pipe so far, readable while the reader runs.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<(Vec<u8>, bool)>>);

impl Captured {
    /// Reads `pipe` to its end, keeping the first `cap` bytes and discarding
    /// the rest so the writer never blocks; the flag records a loss.
    async fn fill(self, pipe: Option<impl AsyncRead + Unpin>, cap: usize) {
        let Some(mut pipe) = pipe else { return };
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                return;
            }
            let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let room = cap - kept.0.len();
            kept.0.extend_from_slice(&buf[..n.min(room)]);
            kept.1 |= n > room;
        }
    }

    /// The bytes kept and whether any were lost.
    fn take(&self) -> (Vec<u8>, bool) {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
pub(crate) mod test_http {
    //! A small HTTP/1.1 server on 127.0.0.1 for tests: it records every
    //! request and answers what the test's handler says, or nothing at all.

    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// One request as received.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        /// Path with query.
        pub path: String,
        /// Names in lower case, in the order received.
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
        }

        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("the request body is JSON")
        }
    }

    /// What the server does with a request.
    pub enum Answer {
        Reply {
            status: u16,
            headers: Vec<(String, String)>,
            body: String,
        },
        /// Holds the connection open without a word for this long.
        Silence(Duration),
    }

    pub fn json(status: u16, value: serde_json::Value) -> Answer {
        Answer::Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: value.to_string(),
        }
    }

    pub fn text(status: u16, body: &str) -> Answer {
        Answer::Reply {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.to_owned(),
        }
    }

    type Handler = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

    pub struct Server {
        /// `http://127.0.0.1:<port>`.
        pub base: String,
        seen: Arc<Mutex<Vec<Seen>>>,
        stop: Arc<AtomicBool>,
        port: u16,
    }

    impl Server {
        /// Starts serving; the handler gets each request and its 0-based index.
        pub fn start(handler: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            let port = listener.local_addr().unwrap().port();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let handler: Arc<Handler> = Arc::new(handler);
            let (seen2, stop2) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (seen, handler) = (seen2.clone(), handler.clone());
                    std::thread::spawn(move || serve(stream, &seen, &*handler));
                }
            });
            Server { base: format!("http://127.0.0.1:{port}"), seen, stop, port }
        }

        pub fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
        }
    }

    fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, handler: &Handler) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut stream = stream;
        // Several requests may come over one connection.
        loop {
            let Some(request) = read_request(&mut reader) else { return };
            let index = {
                let mut all = seen.lock().unwrap();
                all.push(request.clone());
                all.len() - 1
            };
            match handler(&request, index) {
                Answer::Silence(d) => {
                    std::thread::sleep(d);
                    return;
                }
                Answer::Reply { status, headers, body } => {
                    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                    if stream.write_all(head.as_bytes()).is_err()
                        || stream.write_all(body.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            }
        }
    }

    fn read_request(reader: &mut impl BufRead) -> Option<Seen> {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_owned();
        let path = parts.next()?.to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        Some(Seen { method, path, headers, body })
    }

    fn reason(status: u16) -> &'static str {
        match status {
            200 => "OK",
            201 => "Created",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            422 => "Unprocessable Entity",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Status",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::test_http::{self, Answer, Server};
    use super::*;

    const DIFF: &str =
        "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-fn a() { return 1; }\n+fn a() { 1 }\n";

    fn request() -> AgentRequest {
        AgentRequest {
            project: "widget".into(),
            git_url: "https://git.example.invalid/acme/widget.git".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            language: "rust".into(),
            subproject: ".".into(),
            recipe: "lint".into(),
            command: "cargo clippy --message-format=json".into(),
            finding: FindingBrief {
                kind: "lint".into(),
                severity: "warn".into(),
                tool: "clippy".into(),
                file: Some("src/lib.rs".into()),
                line: Some(1),
                column: Some(10),
                code: "clippy::needless_return".into(),
                message: "unneeded `return` statement".into(),
                suggested_fix: Some("remove `return`".into()),
            },
            context: Some(Context {
                path: "src/lib.rs".into(),
                first_line: 1,
                last_line: 2,
                text: "fn a() { return 1; }\nfn b() {}\n".into(),
            }),
            attempt_number: 1,
            previous: vec![],
        }
    }

    fn config(kind: AgentKind, server: &Server) -> AgentConfig {
        AgentConfig {
            url: Some(format!("{}/v1", server.base)),
            token: Some("sk-test-4f9a2c".into()),
            model: Some("test-model".into()),
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(10),
            ..AgentConfig::new(kind)
        }
    }

    fn reply_json() -> String {
        json!({"diff": DIFF, "explanation": "dropped the return", "confidence": 0.9}).to_string()
    }

    fn openai_answer(content: &str) -> Answer {
        test_http::json(
            200,
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "test-model",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }),
        )
    }

    #[test]
    fn kinds_parse_and_print() {
        for kind in [AgentKind::OpenAi, AgentKind::Anthropic, AgentKind::Command] {
            assert_eq!(AgentKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AgentKind::parse("OpenAI"), None);
        assert_eq!(AgentKind::parse(""), None);
    }

    #[test]
    fn debug_hides_the_token() {
        let cfg = AgentConfig {
            token: Some("sk-very-secret".into()),
            url: Some("https://user:pw@example.invalid/v1".into()),
            ..AgentConfig::new(AgentKind::OpenAi)
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn replies_in_many_shapes_parse() {
        let json = reply_json();
        let cases = [
            ("bare JSON", json.clone()),
            ("json fence", format!("```json\n{json}\n```")),
            ("plain fence", format!("```\n{json}\n```")),
            ("prose around", format!("Here is the fix {{as asked}}:\n{json}\nHope it helps {{}}.")),
            ("prose and fence", format!("Sure.\n\n```json\n{json}\n```\n\nLet me know.")),
            ("whitespace", format!("\n\n   {json}   \n")),
        ];
        for (name, text) in cases {
            let reply = parse_reply(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(reply.diff, DIFF, "{name}");
            assert_eq!(reply.explanation, "dropped the return", "{name}");
            assert_eq!(reply.confidence, Some(0.9), "{name}");
        }
    }

    #[test]
    fn an_object_nested_in_another_is_found() {
        let text = format!(r#"{{"result": {}, "note": "x"}}"#, reply_json());
        assert_eq!(parse_reply(&text).unwrap().diff, DIFF);
    }

    #[test]
    fn raw_line_breaks_inside_strings_are_tolerated() {
        let text = format!(
            "{{\"diff\": \"{}\", \"explanation\": \"two\n\tlines\"}}",
            DIFF.trim_end_matches('\n')
        );
        let reply = parse_reply(&text).unwrap();
        assert_eq!(reply.diff, DIFF);
        assert_eq!(reply.explanation, "two\n\tlines");
        // A lone quote in the prose before must not flip what counts as a string.
        let text = format!("Here is the 5\" fix:\n```json\n{text}\n```\n");
        assert_eq!(parse_reply(&text).unwrap().diff, DIFF);
    }

    #[test]
    fn confidence_is_read_leniently_and_clamped() {
        let cases: [(Value, Option<f64>); 9] = [
            (json!(0.25), Some(0.25)),
            (json!(1), Some(1.0)),
            (json!(1.7), Some(1.0)),
            (json!(-0.2), Some(0.0)),
            (json!("0.6"), Some(0.6)),
            (json!(" 80% "), Some(0.8)),
            (json!("high"), None),
            (json!(null), None),
            (json!([0.5]), None),
        ];
        for (value, want) in cases {
            let text = json!({"diff": DIFF, "confidence": value}).to_string();
            assert_eq!(parse_reply(&text).unwrap().confidence, want, "{value}");
        }
        let text = json!({"diff": DIFF}).to_string();
        let reply = parse_reply(&text).unwrap();
        assert_eq!((reply.confidence, reply.explanation.as_str()), (None, ""));
    }

    #[test]
    fn a_bare_diff_fence_is_taken_with_an_empty_explanation() {
        for text in [
            format!("I removed the return.\n```diff\n{DIFF}```\n"),
            format!("```patch\n{DIFF}```"),
            format!("```\n{DIFF}```"),
            format!("```diff\n{DIFF}"),
        ] {
            let reply = parse_reply(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(reply.diff, DIFF);
            assert_eq!(reply.explanation, "");
            assert_eq!(reply.confidence, None);
        }
    }

    #[test]
    fn diffs_are_unfenced_and_end_in_a_newline() {
        let fenced = format!("```diff\n{DIFF}```");
        let text = json!({"diff": fenced, "explanation": "e"}).to_string();
        assert_eq!(parse_reply(&text).unwrap().diff, DIFF);

        let text = json!({"diff": DIFF.trim_end()}).to_string();
        assert_eq!(parse_reply(&text).unwrap().diff, DIFF);

        let git = "diff --git a/x b/x\nold mode 100644\nnew mode 100755\n";
        assert_eq!(parse_reply(&json!({"diff": git}).to_string()).unwrap().diff, git);

        let text = json!({"diff": format!("\n\n{DIFF}")}).to_string();
        assert_eq!(parse_reply(&text).unwrap().diff, DIFF);
    }

    #[test]
    fn replies_without_a_usable_diff_are_refused() {
        let cases = [
            (json!({"diff": "", "explanation": "cannot fix safely"}).to_string(), "empty"),
            (json!({"diff": null, "explanation": "cannot fix safely"}).to_string(), "empty"),
            (json!({"diff": "   \n"}).to_string(), "empty"),
            (json!({"diff": "just remove the return"}).to_string(), "not a unified diff"),
            ("I think you should remove the return statement.".to_owned(), "neither"),
            (json!({"patch": DIFF}).to_string(), "neither"),
            ("```rust\nfn a() { 1 }\n```".to_owned(), "neither"),
            (String::new(), "neither"),
        ];
        for (text, reason_part) in cases {
            match parse_reply(&text) {
                Err(AgentError::NoDiff { reason, quote }) => {
                    assert!(reason.contains(reason_part), "{text}: {reason}");
                    assert!(quote.chars().count() <= QUOTE_CHARS + 1, "{quote}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let Err(e) =
            parse_reply(&json!({"diff": "", "explanation": "cannot fix safely"}).to_string())
        else {
            panic!("accepted an empty diff")
        };
        assert!(e.to_string().contains("cannot fix safely"), "{e}");
    }

    #[test]
    fn a_long_reply_is_quoted_short() {
        let text = "no diff here. ".repeat(1000);
        let Err(AgentError::NoDiff { quote, .. }) = parse_reply(&text) else { panic!() };
        assert!(quote.chars().count() <= QUOTE_CHARS + 1);
    }

    #[test]
    fn the_prompt_carries_the_finding_the_code_and_the_rules() {
        let mut req = request();
        req.finding.message = "bad\n```\nembedded fence".into();
        req.attempt_number = 2;
        req.previous = vec![PreviousAttempt {
            diff: DIFF.into(),
            outcome: "the recipe still reported the finding".into(),
        }];
        let (system, user) = prompt(&req);
        for needle in ["JSON", "\"diff\"", "\"explanation\"", "\"confidence\"", "a/<path>"] {
            assert!(system.contains(needle), "system lacks {needle}");
        }
        assert!(system.contains("as little as possible"));
        assert!(system.contains("other than those the fix needs"));
        for needle in [
            "widget",
            "rust",
            "cargo clippy --message-format=json",
            "clippy::needless_return",
            "src/lib.rs:1:10",
            "remove `return`",
            "1 | fn a() { return 1; }",
            "2 | fn b() {}",
            "attempt 2",
            "the recipe still reported the finding",
            "-fn a() { return 1; }",
        ] {
            assert!(user.contains(needle), "user message lacks {needle:?}:\n{user}");
        }
        // The message holds a fence of three backticks, so its own fence is longer.
        assert!(user.contains("````\nbad\n```\nembedded fence\n````"), "{user}");
    }

    #[test]
    fn context_windows_stay_inside_the_file() {
        let content: String = (1..=50).map(|n| format!("line {n}\n")).collect();
        let c = Context::around("f", &content, 25, CONTEXT_RADIUS).unwrap();
        assert_eq!((c.first_line, c.last_line), (5, 45));
        assert!(c.text.starts_with("line 5\n") && c.text.ends_with("line 45\n"));
        let c = Context::around("f", &content, 3, CONTEXT_RADIUS).unwrap();
        assert_eq!((c.first_line, c.last_line), (1, 23));
        let c = Context::around("f", &content, 50, CONTEXT_RADIUS).unwrap();
        assert_eq!((c.first_line, c.last_line), (30, 50));
        assert!(Context::around("f", &content, 51, CONTEXT_RADIUS).is_none());
        assert!(Context::around("f", &content, 0, CONTEXT_RADIUS).is_none());
        let c = Context::around("f", "no newline", 1, 2).unwrap();
        assert_eq!(c.text, "no newline\n");
    }

    #[test]
    fn endpoints_are_built_from_the_base() {
        assert_eq!(openai_endpoint("http://h/v1"), "http://h/v1/chat/completions");
        assert_eq!(openai_endpoint("http://h/v1/"), "http://h/v1/chat/completions");
        assert_eq!(openai_endpoint("http://h/v1/chat/completions"), "http://h/v1/chat/completions");
        assert_eq!(anthropic_endpoint("http://h"), "http://h/v1/messages");
        assert_eq!(anthropic_endpoint("http://h/"), "http://h/v1/messages");
        assert_eq!(anthropic_endpoint("http://h/v1"), "http://h/v1/messages");
        assert_eq!(anthropic_endpoint("http://h/v1/messages"), "http://h/v1/messages");
    }

    #[test]
    fn the_command_environment_has_no_crafting_variables() {
        let vars = [("PATH", "/usr/bin:/bin"), ("CRAFTING_GITEA_TOKEN", "t"), ("CRAFTING", "x")];
        let env = command_env(vars.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(names, ["PATH", "CRAFTING"]);
    }

    #[tokio::test]
    async fn openai_requests_follow_the_chat_completions_api() {
        let server = Server::start(|seen, _| {
            let body = seen.json();
            let roles: Vec<_> =
                body["messages"].as_array().unwrap().iter().map(|m| m["role"].clone()).collect();
            let ok = seen.method == "POST"
                && seen.path == "/v1/chat/completions"
                && seen.header("authorization") == Some("Bearer sk-test-4f9a2c")
                && seen.header("content-type") == Some("application/json")
                && body["model"] == "test-model"
                && body["temperature"] == 0
                && roles == [json!("system"), json!("user")]
                && body["messages"][1]["content"].as_str().unwrap().contains("needless_return");
            if ok {
                openai_answer(&format!("```json\n{}\n```", reply_json()))
            } else {
                test_http::text(400, "the request is not as expected")
            }
        });
        let reply = ask(&config(AgentKind::OpenAi, &server), &request()).await.unwrap();
        assert_eq!(reply.diff, DIFF);
        assert_eq!(reply.confidence, Some(0.9));
        assert_eq!(server.seen().len(), 1);
        assert!(server.seen()[0].header("user-agent").unwrap().starts_with("crafting-table/"));
    }

    #[tokio::test]
    async fn openai_without_a_token_sends_no_authorization() {
        let server = Server::start(|_, _| openai_answer(&reply_json()));
        let cfg = AgentConfig { token: None, ..config(AgentKind::OpenAi, &server) };
        ask(&cfg, &request()).await.unwrap();
        assert_eq!(server.seen()[0].header("authorization"), None);
    }

    #[tokio::test]
    async fn anthropic_requests_follow_the_messages_api() {
        let server = Server::start(|seen, _| {
            let body = seen.json();
            let messages = body["messages"].as_array().unwrap();
            let ok = seen.method == "POST"
                && seen.path == "/v1/messages"
                && seen.header("x-api-key") == Some("sk-test-4f9a2c")
                && seen.header("anthropic-version") == Some("2023-06-01")
                && seen.header("content-type") == Some("application/json")
                && seen.header("authorization").is_none()
                && body["model"] == "test-model"
                && body["max_tokens"].as_u64().is_some_and(|n| n > 0)
                && body["system"].as_str().is_some_and(|s| s.contains("JSON"))
                && messages.len() == 1
                && messages[0]["role"] == "user"
                && messages[0]["content"].is_string();
            if !ok {
                return test_http::text(400, "the request is not as expected");
            }
            // The reply is split over two text blocks with a non-text block between.
            let text = reply_json();
            let (first, second) = text.split_at(text.len() / 2);
            test_http::json(
                200,
                json!({
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": "test-model",
                    "content": [
                        {"type": "text", "text": first},
                        {"type": "thinking", "thinking": "{\"diff\": \"nope\"}", "signature": "s"},
                        {"type": "text", "text": second},
                    ],
                    "stop_reason": "end_turn",
                    "stop_sequence": null,
                    "usage": {"input_tokens": 10, "output_tokens": 10},
                }),
            )
        });
        // The base URL without /v1, as Anthropic documents it.
        let cfg =
            AgentConfig { url: Some(server.base.clone()), ..config(AgentKind::Anthropic, &server) };
        let reply = ask(&cfg, &request()).await.unwrap();
        assert_eq!(reply.diff, DIFF);
        assert_eq!(reply.explanation, "dropped the return");
    }

    #[tokio::test]
    async fn server_errors_are_retried_with_backoff() {
        let server = Server::start(|_, i| {
            if i < 2 { test_http::text(500, "busy") } else { openai_answer(&reply_json()) }
        });
        let started = Instant::now();
        let reply = ask(&config(AgentKind::OpenAi, &server), &request()).await.unwrap();
        assert_eq!(reply.diff, DIFF);
        assert_eq!(server.seen().len(), 3);
        // 10 ms, then 20 ms.
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn rate_limits_are_retried() {
        let server = Server::start(|_, i| {
            if i == 0 { test_http::text(429, "slow down") } else { openai_answer(&reply_json()) }
        });
        ask(&config(AgentKind::OpenAi, &server), &request()).await.unwrap();
        assert_eq!(server.seen().len(), 2);
    }

    #[tokio::test]
    async fn retries_stop_at_the_configured_count() {
        let server = Server::start(|_, _| test_http::text(503, "down"));
        let cfg = AgentConfig { retries: 1, ..config(AgentKind::OpenAi, &server) };
        let err = ask(&cfg, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Status { status: 503, attempts: 2, .. }), "{err:?}");
        assert_eq!(server.seen().len(), 2);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried_and_never_show_the_token() {
        // A server that echoes the key it was sent, as some proxies do.
        let server = Server::start(|seen, _| {
            let key = seen.header("authorization").unwrap_or_default().to_owned();
            test_http::text(400, &format!("invalid model; you sent {key}"))
        });
        let err = ask(&config(AgentKind::OpenAi, &server), &request()).await.unwrap_err();
        assert_eq!(server.seen().len(), 1);
        let AgentError::Status { status: 400, ref body, attempts: 1, .. } = err else {
            panic!("{err:?}")
        };
        assert!(body.contains("invalid model"), "{body}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("sk-test-4f9a2c"), "{shown}");
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out_after_every_retry() {
        let server = Server::start(|_, _| Answer::Silence(Duration::from_secs(5)));
        let cfg = AgentConfig {
            timeout: Duration::from_millis(200),
            ..config(AgentKind::OpenAi, &server)
        };
        let started = Instant::now();
        let err = ask(&cfg, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Timeout { attempts: 3, .. }), "{err:?}");
        assert!(err.to_string().contains("did not answer within 1 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(server.seen().len(), 3);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_then_reported() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = AgentConfig {
            url: Some(format!("http://127.0.0.1:{port}/v1")),
            token: Some("sk-test-4f9a2c".into()),
            model: Some("m".into()),
            retries: 1,
            backoff: Duration::from_millis(10),
            ..AgentConfig::new(AgentKind::OpenAi)
        };
        let err = ask(&cfg, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Connect { attempts: 2, .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    }

    #[tokio::test]
    async fn cut_off_and_malformed_answers_are_reported() {
        let server = Server::start(|seen, _| {
            if seen.path.ends_with("/messages") {
                test_http::json(
                    200,
                    json!({"content": [{"type": "text", "text": "{\"di"}], "stop_reason": "max_tokens"}),
                )
            } else if seen.json()["model"] == "cut" {
                test_http::json(
                    200,
                    json!({"choices": [{"message": {"content": "{"}, "finish_reason": "length"}]}),
                )
            } else {
                test_http::text(200, "<html>not json</html>")
            }
        });
        let cfg = config(AgentKind::OpenAi, &server);
        let cut = AgentConfig { model: Some("cut".into()), ..cfg.clone() };
        let err = ask(&cut, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Truncated { agent: "openai" }), "{err:?}");
        let err = ask(&cfg, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::BadResponse { .. }), "{err:?}");
        let anthropic = config(AgentKind::Anthropic, &server);
        let err = ask(&anthropic, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Truncated { agent: "anthropic" }), "{err:?}");
    }

    #[tokio::test]
    async fn missing_settings_are_named() {
        let no_model = AgentConfig { model: None, ..AgentConfig::new(AgentKind::Anthropic) };
        let err = ask(&no_model, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Config(_)) && err.to_string().contains("model"));
        let no_command = AgentConfig::new(AgentKind::Command);
        let err = ask(&no_command, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Config(_)) && err.to_string().contains("command"));
    }

    fn script(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn command_config(command: String) -> AgentConfig {
        AgentConfig {
            command: Some(command),
            timeout: Duration::from_secs(10),
            retries: 0,
            ..AgentConfig::new(AgentKind::Command)
        }
    }

    #[tokio::test]
    async fn a_command_agent_reads_the_request_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let got = dir.path().join("request.json");
        let answer = dir.path().join("answer.json");
        std::fs::write(&answer, reply_json()).unwrap();
        let body = format!("cat > '{}'\ncat '{}'\n", got.display(), answer.display());
        let cfg = command_config(script(dir.path(), "agent.sh", &body));
        let reply = ask(&cfg, &request()).await.unwrap();
        assert_eq!(reply.diff, DIFF);
        assert_eq!(reply.explanation, "dropped the return");
        let sent: AgentRequest = serde_json::from_slice(&std::fs::read(&got).unwrap()).unwrap();
        assert_eq!(sent, request());
    }

    #[tokio::test]
    async fn children_holding_the_output_open_do_not_hold_the_reply_back() {
        let dir = tempfile::tempdir().unwrap();
        let answer = dir.path().join("answer.json");
        std::fs::write(&answer, reply_json()).unwrap();
        let pids = dir.path().join("pids");
        // One child stays in the group, one leaves it with setsid; both keep
        // stdout open after the shell has answered and exited.
        let body = format!(
            "cat >/dev/null\ncat '{}'\nsleep 30 &\necho $! >> '{p}'\n\
             setsid sh -c 'echo $$ >> \"$1\"; exec sleep 30' sh '{p}' &\n",
            answer.display(),
            p = pids.display()
        );
        let mut cfg = command_config(script(dir.path(), "agent.sh", &body));
        cfg.timeout = Duration::from_secs(20);
        let started = Instant::now();
        let reply = ask(&cfg, &request()).await.unwrap();
        assert_eq!(reply.diff, DIFF);
        assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
        // The child in the group is gone; the one that left it is ended here.
        let listed = std::fs::read_to_string(&pids).unwrap();
        let pids: Vec<i32> = listed.split_whitespace().map(|p| p.parse().unwrap()).collect();
        assert_eq!(pids.len(), 2, "{listed}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(pids[0]) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(pids[0]), "the child in the command's group survived");
        // SAFETY: kill(2) on a pid this test's command started.
        unsafe { libc::kill(pids[1], libc::SIGKILL) };
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_exit_code_and_stderr() {
        let cfg = command_config("echo 'model unavailable' >&2; exit 3".into());
        let err = ask(&cfg, &request()).await.unwrap_err();
        let AgentError::Exit { code: Some(3), ref stderr, .. } = err else { panic!("{err:?}") };
        assert_eq!(stderr, "model unavailable");
        assert!(err.to_string().contains("exit code 3"), "{err}");
    }

    #[tokio::test]
    async fn a_command_that_prints_no_diff_is_refused() {
        let cfg = command_config("cat >/dev/null; echo 'I could not find a fix.'".into());
        let err = ask(&cfg, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::NoDiff { .. }), "{err:?}");
    }

    fn gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // A zombie waiting for its new parent counts as gone.
            Ok(stat) => {
                stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
            }
            Err(_) => true,
        }
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let body = format!("sleep 60 &\necho \"$$ $!\" > '{}'\nwait\n", pids.display());
        let mut cfg = command_config(script(dir.path(), "slow.sh", &body));
        cfg.timeout = Duration::from_millis(500);
        let started = Instant::now();
        let err = ask(&cfg, &request()).await.unwrap_err();
        assert!(matches!(err, AgentError::Timeout { agent: "command", .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let written = std::fs::read_to_string(&pids).unwrap();
        let pids: Vec<i32> = written.split_whitespace().map(|p| p.parse().unwrap()).collect();
        assert_eq!(pids.len(), 2, "{written}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pids.iter().all(|&p| gone(p)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pid in pids {
            assert!(gone(pid), "process {pid} survived the timeout");
        }
    }

    #[tokio::test]
    async fn a_command_never_sees_crafting_variables() {
        let env = command_env(
            [
                ("PATH", "/usr/bin:/bin"),
                ("CRAFTING_GITEA_TOKEN", "gitea-secret-71"),
                ("CRAFTING_AGENT_TOKEN", "agent-secret-72"),
                ("AGENT_OWN_SETTING", "kept"),
            ]
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let out = run_command("env", b"", &env, Duration::from_secs(10)).await.unwrap();
        assert!(out.contains("AGENT_OWN_SETTING=kept"), "{out}");
        assert!(!out.contains("CRAFTING_"), "{out}");
        assert!(!out.contains("secret"), "{out}");
    }

    #[tokio::test]
    async fn a_command_may_ignore_its_input() {
        let input = vec![b'x'; 4 << 20];
        let out = run_command("echo done", &input, &[], Duration::from_secs(10)).await.unwrap();
        assert_eq!(out, "done\n");
    }

    #[tokio::test]
    async fn a_command_printing_too_much_is_refused() {
        let command = format!("head -c {} /dev/zero", MAX_REPLY_BYTES + 1);
        let env = command_env([(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))]);
        let err = run_command(&command, b"", &env, Duration::from_secs(20)).await.unwrap_err();
        assert!(matches!(err, AgentError::TooLarge { agent: "command", .. }), "{err:?}");
    }
}
