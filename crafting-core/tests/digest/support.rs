//! Shared pieces of the digest tests: a findings parser driven by the job log,
//! throwaway repositories and engines, and the loopback SMTP sink.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Timelike, Utc};
use crafting_core::digest::{SmtpConfig, SmtpTls};
use crafting_core::{Caller, Config, CraftingTable, Job, JobRequest, ProjectSpec};
use crafting_parsers::{Finding, Kind, ParseContext, Parser, Registry, Severity, fingerprint};
use tempfile::TempDir;

pub const LA: chrono_tz::Tz = chrono_tz::America::Los_Angeles;

/// A parser for the language `fake`: every log line
/// `FINDING<TAB>kind<TAB>severity<TAB>code<TAB>file<TAB>line<TAB>message[<TAB>fix]`
/// becomes a finding. Empty fields are absent; `\n`, `\r`, `\t` and `\\`
/// in the text fields are unescaped, so a finding can carry any text.
pub struct LogFindings;

impl Parser for LogFindings {
    fn claims(&self, _: &str) -> bool {
        true
    }

    fn parse(&self, _: &ParseContext, log: &mut dyn BufRead) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while matches!(log.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end_matches('\n').to_owned();
            buf.clear();
            let Some(rest) = line.strip_prefix("FINDING\t") else { continue };
            let f: Vec<&str> = rest.split('\t').collect();
            if f.len() < 6 {
                continue;
            }
            let (Some(kind), Some(severity)) = (Kind::parse(f[0]), Severity::parse(f[1])) else {
                continue;
            };
            let opt = |s: &str| (!s.is_empty()).then(|| unescape(s));
            let code = unescape(f[2]);
            let file = opt(f[3]);
            let line_no = f[4].parse().ok();
            out.push(Finding {
                kind,
                severity,
                tool: "fake".into(),
                fingerprint: fingerprint(kind, file.as_deref(), line_no, &code),
                file,
                line: line_no,
                column: None,
                code,
                message: unescape(f[5]),
                suggested_fix: f.get(6).and_then(|s| opt(s)),
                raw_json: None,
            });
        }
        out
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r").replace('\t', "\\t")
}

/// One `FINDING` log line for [`LogFindings`].
pub fn finding_line(
    kind: &str,
    severity: &str,
    code: &str,
    file: Option<&str>,
    line: Option<u32>,
    message: &str,
    fix: Option<&str>,
) -> String {
    format!(
        "FINDING\t{kind}\t{severity}\t{}\t{}\t{}\t{}\t{}\n",
        escape(code),
        file.map(escape).unwrap_or_default(),
        line.map(|l| l.to_string()).unwrap_or_default(),
        escape(message),
        fix.map(escape).unwrap_or_default()
    )
}

/// Runs git in `dir`, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
        .args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A temp folder with `repos/` (an allowed local git root) and `engine/`.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("ct-digest-").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repos")).unwrap();
        Fixture { dir }
    }

    /// A repository `name` with one commit of `files`.
    pub fn repo(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let p = self.dir.path().join("repos").join(name);
        std::fs::create_dir_all(&p).unwrap();
        git(&p, &["init", "-q"]);
        commit(&p, files);
        p
    }

    /// An engine config; mails go to `smtp_port` when given, and the digest
    /// fires daily at `fire_hour` Los Angeles time.
    pub fn config(&self, smtp_port: Option<u16>, cron: &str) -> Config {
        let mut c = Config::new(self.dir.path().join("engine"));
        c.local_git_roots = vec![self.dir.path().join("repos")];
        c.kill_grace = Duration::from_secs(2);
        c.runner_workers = 2;
        c.digest.cron = cron.to_owned();
        c.digest.time_zone = LA;
        c.digest.public_url = "http://ct.test:8810".into();
        c.digest.smtp = smtp_port.map(|port| {
            let mut s = SmtpConfig::new("127.0.0.1");
            s.port = Some(port);
            s.tls = SmtpTls::None;
            s.from = "crafting-table <ct@example.org>".into();
            s.timeout = Duration::from_secs(20);
            s
        });
        c
    }

    /// Starts an engine with the [`LogFindings`] parser for language `fake`.
    pub async fn start(&self, config: Config) -> CraftingTable {
        let mut reg = Registry::with_defaults();
        reg.register("fake", Box::new(LogFindings));
        CraftingTable::start_with_parsers(config, reg).await.expect("engine starts")
    }
}

/// Writes `files` into the repository and commits them.
pub fn commit(repo: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let p = repo.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "change"]);
}

/// A daily cron twelve hours away from now (Los Angeles), so that every job
/// of a test falls in one digest window.
pub fn far_cron() -> String {
    let hour = (Utc::now().with_timezone(&LA).hour() + 12) % 24;
    format!("0 0 {hour} * * *")
}

pub fn admin() -> Caller {
    Caller::admin("admin")
}

/// A project with one `fake` subproject at the root.
pub fn spec(
    name: &str,
    repo: &Path,
    recipes: &[(&str, &str)],
    email: &[&str],
    on: &[&str],
) -> ProjectSpec {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "git_url": repo.display().to_string(),
        "subprojects": [{
            "path": ".",
            "language": "fake",
            "recipes": recipes.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        }],
        "notify": {"email": email, "on": on},
    }))
    .unwrap()
}

/// Enqueues a recipe and waits for its end.
pub async fn run(t: &CraftingTable, project: &str, recipe: &str) -> Job {
    let req = JobRequest { recipe: recipe.into(), ..Default::default() };
    let job = t.enqueue(&admin(), project, req).await.expect("enqueue");
    let done = t.wait_job(&admin(), &job.id, Duration::from_secs(120)).await.expect("wait");
    assert!(done.status.is_terminal(), "job did not finish: {done:?}");
    done
}

/// The digest date whose window holds the present.
pub fn today(t: &CraftingTable) -> NaiveDate {
    t.digest().clock().date_covering(Utc::now())
}

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mailparse::ParsedMail<'_> {
        mailparse::parse_mail(&self.raw).expect("a well-formed message")
    }

    pub fn subject(&self) -> String {
        let p = self.parsed();
        let all = p.headers.iter().filter(|h| h.get_key().eq_ignore_ascii_case("subject"));
        let subjects: Vec<String> = all.map(|h| h.get_value()).collect();
        assert_eq!(subjects.len(), 1, "one Subject header: {subjects:?}");
        subjects[0].clone()
    }

    /// The decoded text and HTML parts, line endings made `\n`.
    pub fn parts(&self) -> (String, String) {
        let p = self.parsed();
        assert_eq!(p.ctype.mimetype, "multipart/alternative");
        assert_eq!(p.subparts.len(), 2, "two alternatives");
        assert_eq!(p.subparts[0].ctype.mimetype, "text/plain");
        assert_eq!(p.subparts[1].ctype.mimetype, "text/html");
        let body = |i: usize| p.subparts[i].get_body().unwrap().replace("\r\n", "\n");
        (body(0), body(1))
    }
}

/// The loopback SMTP server of `smtp_sink.py`, stopped on drop.
pub struct Sink {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    dir: TempDir,
}

impl Sink {
    /// Starts the sink, refusing the first `refuse_first` DATA commands.
    /// `None` (with the reason printed) when python3 or aiosmtpd is missing.
    pub fn start(refuse_first: u32) -> Option<Sink> {
        let probe = Command::new("python3").args(["-c", "import aiosmtpd"]).output();
        match probe {
            Err(e) => {
                eprintln!("skipping: python3 cannot be run ({e})");
                return None;
            }
            Ok(out) if !out.status.success() => {
                eprintln!("skipping: python3 has no aiosmtpd (pip install aiosmtpd)");
                return None;
            }
            Ok(_) => {}
        }
        let dir = tempfile::Builder::new().prefix("ct-sink-").tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/digest/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("0")
            .arg(dir.path())
            .arg(refuse_first.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let port = first
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("smtp sink did not start: {first:?}"));
        Some(Sink { child, stdin, port, dir })
    }

    /// Messages accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|eml| {
                let meta: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(eml.with_extension("json")).unwrap())
                        .unwrap();
                Received {
                    mail_from: meta["mail_from"].as_str().unwrap().to_owned(),
                    rcpt_tos: meta["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_owned())
                        .collect(),
                    raw: std::fs::read(&eml).unwrap(),
                }
            })
            .collect()
    }

    /// Waits up to `timeout` until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Closing stdin asks the sink to stop; kill it by pid if it lingers.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
