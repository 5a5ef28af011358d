//! The patch loop end to end: a local bare "origin" repository with a
//! Python project linted by real ruff, a `command` agent that is a small
//! shell script replying with a prepared diff, and the Gitea stand-in of
//! [`crate::gitea`] receiving the pull requests.
//!
//! Skipped, with the reason printed, when ruff is not installed
//! (`scripts/test.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gitea::{Gitea, Mode};
use crate::support::{PATIENCE, Server, error_code, git};

const TOKEN: &str = "gitea-token-5f1e0c9a7b";

/// The ruff binary, found through the Python package that ships it.
fn ruff() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "from ruff.__main__ import find_ruff_bin; print(find_ruff_bin())"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_file()).then_some(path)
}

macro_rules! need_ruff {
    () => {
        match ruff() {
            Some(r) => r,
            None => {
                eprintln!("skipped: ruff is not installed (python3 -m pip install ruff)");
                return;
            }
        }
    };
}

/// A server with a Gitea stand-in, a `command` agent, and an origin.
struct Fixture {
    server: Server,
    gitea: Gitea,
    /// The bare repository projects are registered over.
    origin: PathBuf,
    /// Holds the agent script, its reply and the requests it got.
    agent_dir: tempfile::TempDir,
    ruff: PathBuf,
}

/// What the repository holds at its first commit.
const CLEAN_AREA: &str = "def area(width, height):\n    return width * height\n";
const TYPO_AREA: &str = "def area(width, height):\n    return width * heigth\n";

impl Fixture {
    /// `with_agent`: configure the `command` agent; `env`: more variables.
    fn new(ruff: PathBuf, mode: Mode, with_agent: bool, env: &[(&str, &str)]) -> Fixture {
        let gitea = Gitea::start(mode, TOKEN);
        let agent_dir = tempfile::tempdir().expect("temp dir");
        let script = agent_dir.path().join("agent.sh");
        let d = agent_dir.path().display();
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nn=$(ls {d} | grep -c '^request-')\ncat > {d}/request-$n.json\n\
                 env > {d}/env-$n.txt\ncat {d}/reply.json\n"
            ),
        )
        .expect("agent script");
        let command = format!("sh {}", script.display());
        let mut vars: Vec<(&str, &str)> = vec![
            ("CRAFTING_GITEA_URL", gitea.url.as_str()),
            ("CRAFTING_GITEA_TOKEN", TOKEN),
            ("CRAFTING_PATCHER_AUTHOR", "Fix Bot <fix-bot@example.org>"),
        ];
        if with_agent {
            vars.push(("CRAFTING_AGENT_KIND", "command"));
            vars.push(("CRAFTING_AGENT_COMMAND", command.as_str()));
        }
        vars.extend_from_slice(env);
        let server = Server::start(&vars);
        let origin = server.repos_dir().join("acme").join("app.git");
        Fixture { server, gitea, origin, agent_dir, ruff }
    }

    /// Creates the origin with `files` on `main` (plus a symlink `linkdir`
    /// pointing at `link_target` when given).
    fn seed(&self, files: &[(&str, &str)], link_target: Option<&Path>) {
        let work = self.server.root.path().join("seed");
        std::fs::create_dir_all(&work).expect("seed dir");
        git(&work, &["init", "-q", "-b", "main"]);
        for (path, text) in files {
            let p = work.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        if let Some(target) = link_target {
            std::os::unix::fs::symlink(target, work.join("linkdir")).expect("symlink");
        }
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "initial"]);
        std::fs::create_dir_all(self.origin.parent().expect("parent")).expect("mkdir");
        let origin = self.origin.display().to_string();
        git(&work, &["clone", "-q", "--bare", ".", &origin]);
    }

    /// Registers project `name` over the origin with a ruff `lint` recipe.
    fn project(&self, name: &str, auto_patch: bool) {
        self.project_linting(name, auto_patch, ".");
    }

    /// Like [`Fixture::project`], the recipe linting `paths` (a shell word).
    fn project_linting(&self, name: &str, auto_patch: bool, paths: &str) {
        let ruff = self.ruff.display();
        let spec = json!({
            "name": name,
            "git_url": self.origin.display().to_string(),
            "default_branch": "main",
            "subprojects": [{
                "path": ".",
                "language": "python",
                "recipes": {"lint": format!("{ruff} check --no-cache --output-format=json {paths}")},
            }],
            "notify": {"auto_patch": auto_patch},
        });
        let (status, body) = self.server.post("/projects", &self.server.admin, &spec);
        assert_eq!(status, 201, "{body}");
    }

    /// Runs the lint recipe; returns the job and its findings.
    fn lint(&self, project: &str) -> (Value, Vec<Value>) {
        let s = &self.server;
        let id = s.enqueue(&s.admin, project, json!({"recipe": "lint"}));
        let job = s.wait_job(&s.admin, &id)["job"].clone();
        let (status, body) = s.get(&format!("/jobs/{id}/findings"), &s.admin);
        assert_eq!(status, 200, "{body}");
        (job, body["findings"].as_array().expect("findings").clone())
    }

    /// Pushes a branch `feature` off `main` to the origin, one commit per file.
    fn push_feature(&self, files: &[(&str, &str)]) {
        let work = self.server.root.path().join("seed");
        git(&work, &["checkout", "-q", "-b", "feature"]);
        for (path, text) in files {
            std::fs::write(work.join(path), text).expect("write");
            git(&work, &["add", "."]);
            git(&work, &["commit", "-q", "-m", &format!("change {path}")]);
        }
        git(&work, &["push", "-q", &self.origin.display().to_string(), "feature"]);
    }

    /// Runs the lint recipe at `git_ref`; returns the job id and its findings.
    fn lint_at(&self, project: &str, git_ref: &str) -> (String, Vec<Value>) {
        let s = &self.server;
        let id = s.enqueue(&s.admin, project, json!({"recipe": "lint", "ref": git_ref}));
        s.wait_job(&s.admin, &id);
        let (_, body) = s.get(&format!("/jobs/{id}/findings"), &s.admin);
        (id, body["findings"].as_array().expect("findings").clone())
    }

    /// The agent's next reply.
    fn reply(&self, diff: &str, explanation: &str) {
        let reply = json!({"diff": diff, "explanation": explanation, "confidence": 0.8});
        std::fs::write(self.agent_dir.path().join("reply.json"), reply.to_string()).expect("reply");
    }

    /// Requests the agent got, in order.
    fn agent_requests(&self) -> Vec<Value> {
        (0..)
            .map(|n| self.agent_dir.path().join(format!("request-{n}.json")))
            .take_while(|p| p.exists())
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("JSON"))
            .collect()
    }

    /// Asks for an attempt on `finding`; returns status and body.
    fn request(&self, job_id: &str, finding: &Value) -> (u16, Value) {
        let body = json!({"finding_id": finding["id"]});
        self.server.post(&format!("/jobs/{job_id}/patches"), &self.server.admin, &body)
    }

    /// Asks for an attempt and waits for its end.
    fn attempt(&self, job_id: &str, finding: &Value) -> Value {
        let (status, body) = self.request(job_id, finding);
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["patch"]["status"], "drafted", "{body}");
        self.wait_patch(body["patch"]["id"].as_i64().expect("id"))
    }

    /// Polls `GET /patches/{id}` until the attempt is over.
    fn wait_patch(&self, id: i64) -> Value {
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            let (status, body) = self.server.get(&format!("/patches/{id}"), &self.server.admin);
            assert_eq!(status, 200, "{body}");
            if body["patch"]["stage"] == "done" {
                return body["patch"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "attempt {id} never ended: {body}\n{}",
                self.server.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Branches of the origin.
    fn origin_branches(&self) -> Vec<String> {
        let out = git(&self.origin, &["for-each-ref", "--format=%(refname:short)", "refs/heads"]);
        out.lines().map(str::to_owned).collect()
    }

    /// Every text the API shows about attempts, for secret checks.
    fn all_api_text(&self) -> String {
        let (_, list) = self.server.get("/patches?limit=500", &self.server.admin);
        list.to_string()
    }
}

fn finding<'a>(findings: &'a [Value], code: &str) -> &'a Value {
    findings.iter().find(|f| f["code"] == code).unwrap_or_else(|| panic!("no {code}: {findings:?}"))
}

const GOOD_FIX: &str = "--- a/pkg/core.py\n+++ b/pkg/core.py\n@@ -1,2 +1,2 @@\n def area(width, height):\n-    return width * heigth\n+    return width * height\n";

#[test]
fn an_agent_fix_is_verified_pushed_and_opened_as_a_pull_request() {
    let ruff = need_ruff!();
    let fx = Fixture::new(ruff, Mode::Create, true, &[]);
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", TYPO_AREA)], None);
    fx.project("app", false);
    let (job, findings) = fx.lint("app");
    assert_eq!(job["status"], "failed", "{job}");
    let target = finding(&findings, "F821");
    assert_eq!(target["file"], "pkg/core.py");
    // An explanation that repeats a token it should never have seen.
    let explanation =
        format!("The local variable is spelled `height`; the typo made it undefined. {TOKEN}");
    fx.reply(GOOD_FIX, &explanation);

    let job_id = job["id"].as_str().expect("id");
    let patch = fx.attempt(job_id, target);
    assert_eq!(patch["status"], "pr_opened", "{patch}\n{}", fx.server.logs());
    assert_eq!(patch["source"], "agent:command");
    assert_eq!(patch["attempt_number"], 1);
    assert_eq!(patch["confidence"], 0.8);
    let branch = format!("crafting-table/auto/{job_id}-{}", target["id"]);
    assert_eq!(patch["branch"], branch);

    // The agent saw the finding and its context.
    let asked = fx.agent_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["finding"]["code"], "F821");
    assert!(
        asked[0]["context"]["text"].as_str().expect("context").contains("heigth"),
        "{}",
        asked[0]
    );
    let agent_env = std::fs::read_to_string(fx.agent_dir.path().join("env-0.txt")).expect("env");
    assert!(!agent_env.contains(TOKEN), "the forge token reached the agent");

    // The verify job is a job of its own, on the patched commit, and passed.
    let verify_id = patch["verify_job_id"].as_str().expect("verify job");
    let (_, verify) = fx.server.get(&format!("/jobs/{verify_id}"), &fx.server.admin);
    assert_eq!(verify["job"]["status"], "succeeded", "{verify}");
    assert_eq!(verify["job"]["recipe"], "lint");
    let (_, listed) = fx.server.get("/jobs?project=app", &fx.server.admin);
    assert!(listed["jobs"].as_array().expect("jobs").iter().any(|j| j["id"] == verify_id));

    // The branch is in the origin, one commit on main, with the fix and the author.
    assert!(fx.origin_branches().contains(&branch), "{:?}", fx.origin_branches());
    let fixed = git(&fx.origin, &["show", &format!("{branch}:pkg/core.py")]);
    assert_eq!(fixed, CLEAN_AREA.trim_end());
    assert_eq!(
        git(&fx.origin, &["rev-parse", &format!("{branch}~1")]),
        git(&fx.origin, &["rev-parse", "main"])
    );
    assert_eq!(
        git(&fx.origin, &["log", "-1", "--format=%an <%ae>", &branch]),
        "Fix Bot <fix-bot@example.org>"
    );
    let pushed = git(&fx.origin, &["log", "-1", "-p", &branch]);
    assert!(pushed.contains("`height`") && pushed.contains("[redacted]"), "{pushed}");
    assert!(!pushed.contains(TOKEN), "the token was pushed: {pushed}");

    // Exactly one pull request, as Gitea's API wants it.
    assert!(fx.gitea.violations().is_empty(), "{:?}", fx.gitea.violations());
    let prs = fx.gitea.seen();
    assert_eq!(prs.len(), 1);
    let pr = &prs[0];
    assert_eq!(pr.path, "/api/v1/repos/acme/app/pulls");
    assert_eq!(pr.authorization, format!("token {TOKEN}"));
    assert_eq!(pr.body["head"], branch);
    assert_eq!(pr.body["base"], "main");
    let title = pr.body["title"].as_str().expect("title");
    assert!(title.contains("F821") && title.contains("pkg/core.py"), "{title}");
    let text = pr.body["body"].as_str().expect("body");
    for part in [job_id, verify_id, "exit code 0", "heigth", "`height`", "not merged automatically"]
    {
        assert!(text.contains(part), "PR body lacks {part:?}:\n{text}");
    }
    assert_eq!(patch["pr_url"], format!("{}/acme/app/pulls/1", fx.gitea.url));

    // The token appears nowhere users can read.
    assert!(!fx.all_api_text().contains(TOKEN));
    assert!(!text.contains(TOKEN));
    assert!(!fx.server.logs().contains(TOKEN), "the token is in the service's log");
    let (_, log) = fx.server.get_text(&format!("/jobs/{verify_id}/log"), &fx.server.admin);
    assert!(!log.contains(TOKEN));

    // One pull request per finding: asking again is refused.
    let (status, body) = fx.request(job_id, target);
    assert_eq!(error_code(status, &body, 409), "patch_exists");
}

#[test]
fn a_tool_fix_needs_no_agent_and_auto_patch_drafts_it() {
    let ruff = need_ruff!();
    let fx = Fixture::new(ruff, Mode::Create, false, &[]);
    let unused = "import os\n\n\ndef area(width, height):\n    return width * height\n";
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", unused)], None);
    // First a project without auto_patch: its job gets no attempt.
    fx.project("manual", false);
    let (manual_job, _) = fx.lint("manual");
    assert_eq!(manual_job["status"], "failed");
    fx.project("auto", true);
    let (job, findings) = fx.lint("auto");
    assert_eq!(finding(&findings, "F401")["file"], "pkg/core.py");

    let deadline = Instant::now() + PATIENCE;
    let attempt = loop {
        let (_, list) = fx.server.get("/patches?project=auto", &fx.server.admin);
        if let Some(p) = list["patches"].as_array().and_then(|a| a.first()) {
            break p.clone();
        }
        assert!(Instant::now() < deadline, "no automatic attempt\n{}", fx.server.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(attempt["job_id"], job["id"]);
    let patch = fx.wait_patch(attempt["id"].as_i64().expect("id"));
    assert_eq!(patch["status"], "pr_opened", "{patch}\n{}", fx.server.logs());
    assert_eq!(patch["source"], "tool:ruff");
    assert_eq!(patch["confidence"], 1.0);
    assert!(patch["diff"].as_str().expect("diff").contains("-import os"), "{patch}");
    let branch = patch["branch"].as_str().expect("branch");
    let fixed = git(&fx.origin, &["show", &format!("{branch}:pkg/core.py")]);
    assert!(!fixed.contains("import os"), "{fixed}");
    assert_eq!(fx.gitea.seen().len(), 1);
    assert!(fx.gitea.violations().is_empty(), "{:?}", fx.gitea.violations());

    // Another token sees neither the attempt nor the list entry.
    let other = fx.server.mint("other", false, &[]);
    let (status, body) = fx.server.get(&format!("/patches/{}", patch["id"]), &other);
    assert_eq!(error_code(status, &body, 404), "not_found");
    let (_, theirs) = fx.server.get("/patches", &other);
    assert_eq!(theirs["patches"], json!([]));

    // The verify job did not draft an attempt of its own, and the project
    // without auto_patch got none.
    let (_, all) = fx.server.get("/patches", &fx.server.admin);
    assert_eq!(all["patches"].as_array().expect("patches").len(), 1, "{all}");
    let (_, manual) = fx.server.get("/patches?project=manual", &fx.server.admin);
    assert_eq!(manual["patches"], json!([]));
}

#[test]
fn failed_drafts_never_reach_the_forge_and_attempts_run_out() {
    let ruff = need_ruff!();
    let fx = Fixture::new(ruff, Mode::Create, true, &[]);
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", TYPO_AREA)], None);
    fx.project("app", false);
    let (job, findings) = fx.lint("app");
    let job_id = job["id"].as_str().expect("id");
    let target = finding(&findings, "F821");

    // Context that is not in the file.
    fx.reply(
        "--- a/pkg/core.py\n+++ b/pkg/core.py\n@@ -1,2 +1,2 @@\n def area(width, height):\n-    return width * hieght\n+    return width * height\n",
        "wrong context",
    );
    let p1 = fx.attempt(job_id, target);
    assert_eq!(p1["status"], "apply_failed", "{p1}");
    assert!(p1["error"].as_str().expect("error").contains("pkg/core.py"), "{p1}");
    assert!(p1["verify_job_id"].is_null());

    // Applies, but the finding stays.
    fx.reply(
        "--- a/pkg/core.py\n+++ b/pkg/core.py\n@@ -1,2 +1,3 @@\n+# The area of a rectangle.\n def area(width, height):\n     return width * heigth\n",
        "a comment",
    );
    let p2 = fx.attempt(job_id, target);
    assert_eq!(p2["status"], "verify_failed", "{p2}");
    let e2 = p2["error"].as_str().expect("error");
    assert!(e2.contains("still reported") && e2.contains("exit code 1"), "{e2}");
    let (_, v2) = fx
        .server
        .get(&format!("/jobs/{}", p2["verify_job_id"].as_str().expect("verify")), &fx.server.admin);
    assert_eq!(v2["job"]["status"], "failed");

    // Removes the finding and brings a new one elsewhere.
    let trade =
        format!("{GOOD_FIX}--- /dev/null\n+++ b/pkg/extra.py\n@@ -0,0 +1,2 @@\n+import sys\n+\n");
    fx.reply(&trade, "fixed, and a helper module");
    let p3 = fx.attempt(job_id, target);
    assert_eq!(p3["status"], "verify_failed", "{p3}");
    let e3 = p3["error"].as_str().expect("error");
    assert!(
        e3.contains("new finding") && e3.contains("F401") && e3.contains("pkg/extra.py"),
        "{e3}"
    );
    assert!(!e3.contains("still reported"), "{e3}");

    // The agent heard about the earlier attempts.
    let asked = fx.agent_requests();
    assert_eq!(asked.len(), 3);
    assert_eq!(asked[2]["previous"].as_array().expect("previous").len(), 2, "{}", asked[2]);

    // Three attempts is the limit; nothing was pushed or proposed.
    let (status, body) = fx.request(job_id, target);
    assert_eq!(error_code(status, &body, 409), "attempts_exhausted");
    assert_eq!(fx.origin_branches(), vec!["main".to_owned()]);
    assert!(fx.gitea.seen().is_empty());
    // A later job's finding with the same identity is out of attempts too.
    let (job2, findings2) = fx.lint("app");
    let again = finding(&findings2, "F821");
    assert_ne!(again["id"], target["id"]);
    let (status, body) = fx.request(job2["id"].as_str().expect("id"), again);
    assert_eq!(error_code(status, &body, 409), "attempts_exhausted");
}

#[test]
fn hostile_diffs_are_refused_before_anything_is_written() {
    let ruff = need_ruff!();
    let outside = tempfile::tempdir().expect("outside");
    let fx = Fixture::new(ruff, Mode::Create, true, &[("CRAFTING_PATCHER_MAX_ATTEMPTS", "10")]);
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", TYPO_AREA)], Some(outside.path()));
    fx.project("app", false);
    let (job, findings) = fx.lint("app");
    let job_id = job["id"].as_str().expect("id");
    let target = finding(&findings, "F821");
    let absolute = fx.server.root.path().join("absolute-escape.txt");
    let hooks_before = std::fs::read_dir(fx.server.workspace_dir().join("app/.cache/hooks"))
        .map(|d| d.count())
        .unwrap_or(0);

    let create = |path: &str| format!("--- /dev/null\n+++ {path}\n@@ -0,0 +1 @@\n+written\n");
    let cases = [
        ("parent folder", create("b/../escape.txt"), "escape.txt"),
        ("absolute path", create(&absolute.display().to_string()), "absolute-escape.txt"),
        ("committed symlink", create("b/linkdir/planted.txt"), "linkdir"),
        ("git folder", create("b/.git/hooks/pre-commit"), ".git"),
    ];
    for (what, diff, named) in &cases {
        fx.reply(&format!("{GOOD_FIX}{diff}"), what);
        let p = fx.attempt(job_id, target);
        assert_eq!(p["status"], "apply_failed", "{what}: {p}");
        assert!(p["error"].as_str().expect("error").contains(named), "{what}: {p}");
    }
    // A diff that would push one of the service's tokens.
    let leak = format!("{GOOD_FIX}--- /dev/null\n+++ b/pkg/notes.py\n@@ -0,0 +1 @@\n+# {TOKEN}\n");
    fx.reply(&leak, "notes");
    let p = fx.attempt(job_id, target);
    assert_eq!(p["status"], "apply_failed", "{p}");
    assert!(p["error"].as_str().expect("error").contains("tokens"), "{p}");
    assert!(!p.to_string().contains(TOKEN), "{p}");
    // A 50 MB diff.
    let mut huge = String::from(GOOD_FIX);
    huge.push_str("--- /dev/null\n+++ b/pkg/huge.py\n@@ -0,0 +1,800000 @@\n");
    while huge.len() < 50 * 1024 * 1024 {
        huge.push_str("+# padding padding padding padding padding padding padding padding\n");
    }
    fx.reply(&huge, "huge");
    let p = fx.attempt(job_id, target);
    assert!(matches!(p["status"].as_str(), Some("apply_failed" | "error")), "{}", p["status"]);
    let e = p["error"].as_str().expect("error");
    assert!(e.contains("bytes"), "{e}");
    assert!(p["verify_job_id"].is_null());

    // Nothing was written anywhere, nothing pushed, nothing proposed.
    assert!(!fx.server.root.path().join("workspace/app/escape.txt").exists());
    assert!(!fx.server.root.path().join("escape.txt").exists());
    assert!(!absolute.exists());
    assert_eq!(std::fs::read_dir(outside.path()).expect("outside").count(), 0);
    let hooks_after = std::fs::read_dir(fx.server.workspace_dir().join("app/.cache/hooks"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(hooks_before, hooks_after);
    assert_eq!(fx.origin_branches(), vec!["main".to_owned()]);
    assert!(fx.gitea.seen().is_empty());
}

#[test]
fn a_forge_that_fails_or_hangs_ends_the_attempt_in_error_and_says_where_the_branch_is() {
    let ruff = need_ruff!();
    // A refusal deletes the pushed branch again; a lost answer keeps it,
    // since the pull request may have been opened.
    for (mode, expect, branch_kept) in
        [(Mode::Fail, "500", false), (Mode::Hang, "did not answer within 2 s", true)]
    {
        let fx = Fixture::new(ruff.clone(), mode, false, &[("CRAFTING_FORGE_TIMEOUT_SECS", "2")]);
        let unused = "import os\n\n\ndef area(width, height):\n    return width * height\n";
        fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", unused)], None);
        fx.project("app", false);
        let (job, findings) = fx.lint("app");
        let patch = fx.attempt(job["id"].as_str().expect("id"), finding(&findings, "F401"));
        assert_eq!(patch["status"], "error", "{mode:?}: {patch}");
        let e = patch["error"].as_str().expect("error");
        assert!(e.contains(expect), "{mode:?}: {e}");
        assert!(patch["pr_url"].is_null());
        let branch = patch["branch"].as_str().expect("branch").to_owned();
        if branch_kept {
            assert!(e.contains("stays on the remote"), "{e}");
            assert_eq!(fx.origin_branches(), vec![branch, "main".to_owned()], "{mode:?}");
        } else {
            assert!(e.contains("deleted again"), "{e}");
            assert_eq!(fx.origin_branches(), vec!["main".to_owned()], "{mode:?}");
        }
        assert_eq!(fx.gitea.seen().len(), 1, "{mode:?}");
        assert!(!e.contains(TOKEN));
    }
}

#[test]
fn pull_requests_go_into_the_branch_the_job_ran_on() {
    let ruff = need_ruff!();
    let fx = Fixture::new(ruff, Mode::Create, true, &[]);
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", CLEAN_AREA)], None);
    fx.project("app", false);
    // A feature branch with an unrelated commit, then the typo.
    fx.push_feature(&[("pkg/wip.py", "WORK = 1\n"), ("pkg/core.py", TYPO_AREA)]);
    fx.reply(GOOD_FIX, "typo");
    let (id, findings) = fx.lint_at("app", "feature");
    let patch = fx.attempt(&id, finding(&findings, "F821"));
    assert_eq!(patch["status"], "pr_opened", "{patch}");
    let prs = fx.gitea.seen();
    assert_eq!(prs[0].body["base"], "feature", "{:?}", prs[0].body);
    let branch = patch["branch"].as_str().expect("branch");
    let extra = git(&fx.origin, &["rev-list", "--count", &format!("feature..{branch}")]);
    assert_eq!(extra, "1", "the pull request carries the fix only");

    // A verify job is not patched: its commit carries an attempt's change.
    let verify = patch["verify_job_id"].as_str().expect("verify job");
    let (status, body) =
        fx.server.post(&format!("/jobs/{verify}/patches"), &fx.server.admin, &json!({}));
    assert_eq!(error_code(status, &body, 422), "verify_job");
    assert_eq!(fx.agent_requests().len(), 1);
}

#[test]
fn a_commit_that_is_not_on_the_base_branch_is_not_proposed() {
    let ruff = need_ruff!();
    let fx = Fixture::new(ruff, Mode::Create, true, &[]);
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", CLEAN_AREA)], None);
    fx.project("app", false);
    fx.push_feature(&[("pkg/core.py", TYPO_AREA)]);
    let sha = git(&fx.origin, &["rev-parse", "feature"]);
    fx.reply(GOOD_FIX, "typo");
    let (id, findings) = fx.lint_at("app", &sha);
    let patch = fx.attempt(&id, finding(&findings, "F821"));
    assert_eq!(patch["status"], "error", "{patch}");
    let e = patch["error"].as_str().expect("error");
    assert!(e.contains(&sha) && e.contains("\"main\""), "{e}");
    assert!(fx.agent_requests().is_empty(), "nothing was drafted");
    assert!(fx.gitea.seen().is_empty());
    assert_eq!(fx.origin_branches(), vec!["feature".to_owned(), "main".to_owned()]);
}

#[test]
fn requests_that_cannot_be_served_are_refused_clearly() {
    // No forge: 503 naming what to set, whatever the body.
    let plain = Server::start(&[]);
    let (status, body) = plain.post("/jobs/0123456789abcdef/patches", &plain.admin, &json!({}));
    assert_eq!(error_code(status, &body, 404), "not_found");
    let (repo, _) = crate::support::make_repo(&plain.repos_dir(), "plain");
    plain.create_project(&plain.admin, "plain", &repo, json!({"ok": "true"}));
    let id = plain.enqueue(&plain.admin, "plain", json!({"recipe": "ok"}));
    plain.wait_job(&plain.admin, &id);
    let (status, body) = plain.post(&format!("/jobs/{id}/patches"), &plain.admin, &json!({}));
    assert_eq!(error_code(status, &body, 503), "patcher_unconfigured");
    let message = body["error"].as_str().expect("message");
    for var in [
        "CRAFTING_GITEA_URL",
        "CRAFTING_GITEA_TOKEN",
        "CRAFTING_GITHUB_TOKEN",
        "CRAFTING_AGENT_KIND",
    ] {
        assert!(message.contains(var), "{message}");
    }
    // Listing works without a forge: there is simply nothing.
    let (status, body) = plain.get("/patches", &plain.admin);
    assert_eq!((status, body["patches"].clone()), (200, json!([])));

    // With a forge but no agent: a finding without a tool fix, a job
    // without findings, a finding of another job, a bad status filter.
    let ruff = need_ruff!();
    let fx = Fixture::new(ruff, Mode::Create, false, &[]);
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", TYPO_AREA)], None);
    fx.project("app", false);
    let (job, findings) = fx.lint("app");
    let job_id = job["id"].as_str().expect("id");
    let (status, body) = fx.request(job_id, finding(&findings, "F821"));
    assert_eq!(error_code(status, &body, 422), "no_fix_source");
    let (status, body) =
        fx.server.post(&format!("/jobs/{job_id}/patches"), &fx.server.admin, &json!({}));
    assert_eq!(error_code(status, &body, 422), "no_actionable_finding");
    let (status, body) = fx.server.post(
        &format!("/jobs/{job_id}/patches"),
        &fx.server.admin,
        &json!({"finding_id": 999_999}),
    );
    assert_eq!(error_code(status, &body, 404), "not_found");
    let (status, body) = fx.server.get("/patches?status=merged", &fx.server.admin);
    assert_eq!(error_code(status, &body, 400), "invalid_query");
    let (status, body) = fx.server.get("/patches/12345", &fx.server.admin);
    assert_eq!(error_code(status, &body, 404), "not_found");
    let (status, body) = fx.server.post(
        &format!("/jobs/{job_id}/patches"),
        &fx.server.admin,
        &json!({"finding": 1}),
    );
    assert_eq!(error_code(status, &body, 422), "invalid_body");
}

#[test]
fn a_recipe_can_verify_only_the_files_a_fix_changed() {
    let ruff = need_ruff!();
    let fx = Fixture::new(ruff, Mode::Create, true, &[]);
    let other = "def volume():\n    return side ** 3\n";
    fx.seed(&[("pkg/__init__.py", ""), ("pkg/core.py", TYPO_AREA), ("pkg/other.py", other)], None);
    // The whole-tree recipe keeps failing on the other file's finding, so a
    // fix of one finding cannot pass there; the recipe written for fast
    // verify lints only what the fix changed.
    fx.project("whole", false);
    fx.project_linting("fast", false, "${CRAFTING_CHANGED_FILES:-.}");
    fx.reply(GOOD_FIX, "typo");
    for (project, want) in [("whole", "verify_failed"), ("fast", "pr_opened")] {
        let (job, findings) = fx.lint(project);
        assert_eq!(job["findings_count"], 2, "{job}");
        let target = findings
            .iter()
            .find(|f| f["code"] == "F821" && f["file"] == "pkg/core.py")
            .expect("the typo's finding");
        let patch = fx.attempt(job["id"].as_str().expect("id"), target);
        assert_eq!(patch["status"], want, "{project}: {patch}");
        let verify_id = patch["verify_job_id"].as_str().expect("verify job");
        let (_, verify) = fx.server.get(&format!("/jobs/{verify_id}"), &fx.server.admin);
        let snapshot = &verify["job"]["recipe_snapshot"];
        assert_eq!(snapshot["changed_files"], json!(["pkg/core.py"]), "{verify}");
        let log = verify["log_tail"].as_str().expect("log");
        assert!(log.contains("CRAFTING_CHANGED_FILES=pkg/core.py"), "{log}");
        if project == "whole" {
            let e = patch["error"].as_str().expect("error");
            assert!(e.contains("exit code 1") && !e.contains("new finding"), "{e}");
            assert!(e.contains("finding is gone") && e.contains("CRAFTING_CHANGED_FILES"), "{e}");
        }
    }
    // An ordinary job never gets the variable: the fast recipe lints everything.
    let (job, _) = fx.lint("fast");
    assert_eq!(job["findings_count"], 2, "{job}");
    assert!(job["recipe_snapshot"].get("changed_files").is_none(), "{job}");
}
