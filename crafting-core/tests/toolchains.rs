//! The toolchain table, `doctor` and `smoke` on this machine, the image's
//! files that must agree with the table, the example recipes, and
//! `examples/register-all.sh` against a loopback stand-in server.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crafting_core::toolchains::{
    self, ALL_GREEN, GREETING, Locate, SmokeOutcome, SmokeResult, TOOLCHAINS,
};
use crafting_core::{NOTIFY_EVENTS, ProjectSpec, validate};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crafting-core has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn table_names() -> Vec<&'static str> {
    toolchains::names().collect()
}

fn as_set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_owned).collect()
}

/// Asserts `names` has no repeats and equals the doctor table as a set.
fn assert_same_as_table(what: &str, names: &[String]) {
    let set: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(set.len(), names.len(), "{what} names a toolchain twice: {names:?}");
    let table = as_set(table_names());
    let only_there: Vec<_> = set.difference(&table).collect();
    let only_table: Vec<_> = table.difference(&set).collect();
    assert!(
        only_there.is_empty() && only_table.is_empty(),
        "{what} and the doctor table disagree: only in {what}: {only_there:?}; \
         missing from {what}: {only_table:?}"
    );
}

/// The first column of the matrix table under `## Toolchains in the image`,
/// from README.md when it has that section, else from docker/TOOLCHAINS.md.
fn matrix_names() -> (String, Vec<String>) {
    const HEADING: &str = "## Toolchains in the image";
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap_or_default();
    let (source, text) = if readme.lines().any(|l| l.trim() == HEADING) {
        ("README.md", readme)
    } else {
        ("docker/TOOLCHAINS.md", read("docker/TOOLCHAINS.md"))
    };
    let mut lines = text.lines().skip_while(|l| l.trim() != HEADING).skip(1);
    let mut names = Vec::new();
    let mut in_table = false;
    for line in lines.by_ref() {
        let t = line.trim();
        if t.starts_with("## ") {
            break;
        }
        if !t.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let first = t.trim_matches('|').split('|').next().unwrap_or("").trim();
        let first = first.trim_matches('`');
        let is_separator = first.chars().all(|c| c == '-' || c == ':') && !first.is_empty();
        if is_separator || first == "toolchain" {
            continue;
        }
        names.push(first.to_owned());
    }
    assert!(!names.is_empty(), "no toolchain table under {HEADING:?} in {source}");
    (source.to_owned(), names)
}

/// The names of the Dockerfile's `# provides:` comments.
fn dockerfile_names() -> Vec<String> {
    read("docker/Dockerfile")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# provides:"))
        .flat_map(|rest| rest.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// `(name, body, marker)` of every `smoke NAME BODY MARKER ...` call in smoke.sh.
fn smoke_sh_calls() -> Vec<(String, String, String)> {
    read("docker/smoke.sh")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("smoke "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            assert!(words.len() >= 5, "smoke.sh call too short: {l}");
            (words[1].to_owned(), words[2].to_owned(), words[3].to_owned())
        })
        .collect()
}

#[test]
fn matrix_dockerfile_smoke_script_and_doctor_table_name_the_same_toolchains() {
    let (source, matrix) = matrix_names();
    assert_same_as_table(&source, &matrix);
    assert_same_as_table("docker/Dockerfile (# provides:)", &dockerfile_names());
    let smoke: Vec<String> = smoke_sh_calls().into_iter().map(|(n, _, _)| n).collect();
    assert_same_as_table("docker/smoke.sh", &smoke);
    // The table in the matrix keeps the doctor table's order, so the two read alike.
    assert_eq!(matrix, table_names(), "{source} lists the toolchains in another order");
    assert_eq!(smoke, table_names(), "docker/smoke.sh checks the toolchains in another order");
}

#[test]
fn the_build_stage_copies_every_workspace_member() {
    let manifest = read("Cargo.toml");
    let members_line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("the root Cargo.toml lists workspace members");
    let members: Vec<&str> =
        members_line.split('"').skip(1).step_by(2).filter(|m| !m.trim().is_empty()).collect();
    assert!(!members.is_empty(), "no members in {members_line:?}");
    let dockerfile = read("docker/Dockerfile");
    for dir in members.iter().copied().chain(["src"]) {
        let copy = format!("COPY {dir} ./{dir}");
        assert!(dockerfile.lines().any(|l| l.trim() == copy), "docker/Dockerfile lacks `{copy}`");
    }
    assert!(dockerfile.contains("COPY Cargo.toml Cargo.lock ./"));
    assert!(dockerfile.contains("cargo build --release --locked"));
}

#[test]
fn smoke_script_does_what_the_table_does() {
    let table: BTreeMap<&str, &toolchains::Toolchain> =
        TOOLCHAINS.iter().map(|t| (t.name, t)).collect();
    for (name, body, marker) in smoke_sh_calls() {
        let tc = table[name.as_str()];
        let (has_hello, prints) = match tc.hello {
            Some(h) => (true, h.prints_greeting),
            None => (false, false),
        };
        assert_eq!(
            body != "-",
            has_hello,
            "{name}: smoke.sh and the table disagree on a hello-world"
        );
        if has_hello {
            let expected = if prints { "hello_" } else { "quiet_" };
            assert!(body.starts_with(expected), "{name}: body {body} should start with {expected}");
        }
        let sh_marker = (marker != "-").then_some(marker.as_str());
        assert_eq!(sh_marker, tc.version_marker, "{name}: version markers differ");
    }
}

#[test]
fn every_table_entry_is_well_formed() {
    let names = table_names();
    assert_eq!(as_set(names.iter().copied()).len(), names.len(), "duplicate names");
    let placeholder = regex::Regex::new(r"\{[a-z]*\}").unwrap();
    for tc in TOOLCHAINS {
        assert!(!tc.version_args.is_empty(), "{}: no version arguments", tc.name);
        if let Locate::OnPath(bins) = tc.locate {
            assert!(!bins.is_empty(), "{}: nothing to look for", tc.name);
        }
        let Some(hello) = tc.hello else { continue };
        assert!(!hello.steps.is_empty(), "{}: hello-world without steps", tc.name);
        for step in hello.steps {
            assert!(!step.is_empty(), "{}: empty step", tc.name);
            for word in step.iter().chain(tc.env.iter().map(|(_, v)| v)) {
                for m in placeholder.find_iter(word) {
                    assert!(
                        ["{bin}", "{bindir}", "{dir}"].contains(&m.as_str()),
                        "{}: unknown placeholder {} in {word:?}",
                        tc.name,
                        m.as_str()
                    );
                }
            }
        }
        if hello.prints_greeting {
            let anywhere = hello.files.iter().any(|(_, body)| body.contains(GREETING))
                || hello.steps.iter().flat_map(|s| s.iter()).any(|w| w.contains(GREETING));
            assert!(anywhere, "{}: nothing in its hello-world says {GREETING:?}", tc.name);
        }
    }
    for name in ["rust", "python", "node", "java", "c", "go", "swift", "kotlin", "dotnet", "nix"] {
        assert!(
            toolchains::find(name).is_some_and(|t| t.hello.is_some()),
            "{name} needs a hello-world"
        );
    }
}

#[test]
fn versions_are_read_from_what_tools_print() {
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("rustc 1.95.0 (59807616e 2026-04-14)", None, Some("1.95.0")),
        ("Python 3.11.7", None, Some("3.11.7")),
        ("v22.20.0", None, Some("22.20.0")),
        ("go version go1.25.3 linux/amd64", None, Some("1.25.3")),
        ("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime", None, Some("17.0.15")),
        ("\u{1b}[1mApache Maven 3.8.7\u{1b}[m\nMaven home: /usr/share/maven", None, Some("3.8.7")),
        ("Go: go1.25.3\nScanner: govulncheck@v1.1.4\nDB: x", Some("Scanner:"), Some("1.1.4")),
        (
            "ShellCheck - shell script analysis tool\nversion: 0.9.0\nlicense: GPL",
            Some("version:"),
            Some("0.9.0"),
        ),
        ("info: kotlinc-jvm 1.9.25 (JRE 17.0.15+6)", None, Some("1.9.25")),
        ("Swift version 5.9.2 (swift-5.9.2-RELEASE)", None, Some("5.9.2")),
        ("no digits here", None, None),
        ("Scanner line missing", Some("Scanner:"), None),
    ];
    for (text, marker, want) in cases {
        assert_eq!(
            toolchains::extract_version(text, *marker).as_deref(),
            *want,
            "reading {text:?} with marker {marker:?}"
        );
    }
}

fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn doctor_reports_everything_missing_on_an_empty_path() {
    let empty = tempfile::tempdir().unwrap();
    let statuses = toolchains::doctor(Some(empty.path().to_str().unwrap()));
    assert_eq!(statuses.len(), TOOLCHAINS.len());
    for (s, tc) in statuses.iter().zip(TOOLCHAINS) {
        assert_eq!(s.name, tc.name);
        if matches!(tc.locate, Locate::OnPath(_)) {
            assert!(s.missing && s.path.is_none() && s.version.is_none(), "{s:?}");
        }
    }
    let table = toolchains::render_table(&statuses);
    assert!(table.lines().any(|l| l.starts_with("swift") && l.trim_end().ends_with("missing")));
}

#[test]
fn doctor_finds_tools_on_the_given_path_and_reads_their_versions() {
    let bin = tempfile::tempdir().unwrap();
    write_script(bin.path(), "swift", "echo 'Swift version 5.9.2 (swift-5.9.2-RELEASE)'");
    write_script(
        bin.path(),
        "govulncheck",
        "echo 'Go: go1.25.3'; echo 'Scanner: govulncheck@v1.1.4'",
    );
    write_script(bin.path(), "fdfind", "echo 'fdfind 8.6.0'");
    write_script(bin.path(), "ruff", "echo 'ruff is broken' >&2; exit 3");
    let path = bin.path().to_str().unwrap();
    let statuses = toolchains::doctor(Some(path));
    let by_name = |n: &str| statuses.iter().find(|s| s.name == n).unwrap().clone();

    let swift = by_name("swift");
    assert!(!swift.missing);
    assert_eq!(swift.version.as_deref(), Some("5.9.2"));
    assert_eq!(swift.path.as_deref(), Some(bin.path().join("swift").as_path()));
    assert_eq!(by_name("govulncheck").version.as_deref(), Some("1.1.4"));
    // `fd` is found under Debian's name too.
    assert_eq!(by_name("fd").path.as_deref(), Some(bin.path().join("fdfind").as_path()));
    let ruff = by_name("ruff");
    assert!(!ruff.missing && ruff.version.is_none());
    let problem = ruff.problem.expect("a broken tool is reported");
    assert!(problem.contains("exited with 3") && problem.contains("ruff is broken"), "{problem}");
    assert!(by_name("python").missing, "nothing else is on that path");

    let table = toolchains::render_table(&statuses);
    let swift_row = table.lines().find(|l| l.starts_with("swift ")).unwrap();
    assert!(swift_row.contains("5.9.2") && swift_row.contains(&format!("{path}/swift")), "{table}");
    assert!(table.lines().next().unwrap().starts_with("TOOLCHAIN"));
    // Four fakes, plus JDK 21 when JAVA_HOME_21 points at one (it is not looked up on PATH).
    let java21 =
        usize::from(toolchains::locate(toolchains::find("java21").unwrap(), None).is_some());
    assert!(
        table.ends_with(&format!("{} of {} present\n", 4 + java21, TOOLCHAINS.len())),
        "{table}"
    );
}

/// The toolchains this machine is known to carry; their smoke must pass.
const REQUIRED_HERE: &[&str] = &["rust", "python", "node", "java", "c"];

#[test]
fn smoke_passes_for_present_toolchains_and_reports_the_others_missing() {
    let work = tempfile::tempdir().unwrap();
    let results = toolchains::smoke(work.path());
    let report = toolchains::render_smoke(&results);
    println!("{report}");
    assert_eq!(results.len(), TOOLCHAINS.len());
    for (r, tc) in results.iter().zip(TOOLCHAINS) {
        let present = toolchains::locate(tc, None).is_some();
        match &r.outcome {
            SmokeOutcome::Missing => {
                assert!(!present, "{} is present but was reported missing", r.name)
            }
            SmokeOutcome::Ok { version } => {
                assert!(present);
                assert!(version.chars().next().is_some_and(|c| c.is_ascii_digit()), "{}", r.line());
            }
            SmokeOutcome::Fail { reason } => panic!("{} is present and failed: {reason}", r.name),
        }
    }
    for name in REQUIRED_HERE {
        let r = results.iter().find(|r| r.name == *name).unwrap();
        assert!(matches!(r.outcome, SmokeOutcome::Ok { .. }), "{}", r.line());
        assert!(report.lines().any(|l| l.starts_with(&format!("OK {name} "))), "{report}");
    }
    assert!(toolchains::smoke_passed(&results));
    // Passing entries leave nothing behind.
    assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0, "leftovers in the work folder");
}

#[test]
fn smoke_fails_a_toolchain_whose_hello_world_breaks_and_keeps_its_files() {
    let bin = tempfile::tempdir().unwrap();
    // A `rustc` that answers --version but builds nothing.
    write_script(
        bin.path(),
        "rustc",
        "if [ \"$1\" = --version ]; then echo 'rustc 9.9.9'; fi; exit 0",
    );
    // A `node` that runs but prints something else.
    write_script(
        bin.path(),
        "node",
        "if [ \"$1\" = --version ]; then echo v22.0.0; else echo bye; fi",
    );
    let work = tempfile::tempdir().unwrap();
    let path = bin.path().to_str().unwrap();
    let results =
        toolchains::smoke_with(work.path(), Some(path), Some(&["rust", "node", "python"]));
    assert_eq!(results.iter().map(|r| r.name).collect::<Vec<_>>(), ["python", "node", "rust"]);

    let outcome = |n: &str| results.iter().find(|r| r.name == n).unwrap().outcome.clone();
    assert_eq!(outcome("python"), SmokeOutcome::Missing);
    let SmokeOutcome::Fail { reason } = outcome("rust") else { panic!("rust should fail") };
    assert!(reason.contains("cannot start") && reason.contains("hello"), "{reason}");
    assert!(work.path().join("smoke-rust/hello.rs").exists(), "files of a failure are kept");
    let SmokeOutcome::Fail { reason } = outcome("node") else { panic!("node should fail") };
    assert!(reason.contains(GREETING) && reason.contains("bye"), "{reason}");

    assert!(!toolchains::smoke_passed(&results));
    let report = toolchains::render_smoke(&results);
    assert!(report.contains("MISSING python\n"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("FAIL rust: ")), "{report}");
    assert!(report.ends_with("=== smoke: 0 ok, 2 failing, 1 missing ===\n"), "{report}");
    assert!(!report.contains(ALL_GREEN));
}

#[test]
fn smoke_report_ends_green_only_when_everything_passed() {
    let ok = |name| SmokeResult { name, outcome: SmokeOutcome::Ok { version: "1.0".into() } };
    let all_ok = [ok("rust"), ok("go")];
    assert_eq!(toolchains::render_smoke(&all_ok), format!("OK rust 1.0\nOK go 1.0\n{ALL_GREEN}\n"));
    let with_missing = [ok("rust"), SmokeResult { name: "swift", outcome: SmokeOutcome::Missing }];
    let report = toolchains::render_smoke(&with_missing);
    assert!(!report.contains(ALL_GREEN) && report.contains("1 missing"), "{report}");
    assert!(toolchains::smoke_passed(&with_missing), "missing is not failing");
}

fn run_smoke_sh(only: &str) -> Output {
    Command::new("bash")
        .arg(repo_root().join("docker/smoke.sh"))
        .env("SMOKE_ONLY", only)
        .env_remove("JAVA_HOME_21")
        .output()
        .expect("bash runs")
}

#[test]
fn smoke_script_goes_green_on_this_machines_toolchains() {
    let out = run_smoke_sh(&REQUIRED_HERE.join(" "));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for name in REQUIRED_HERE {
        assert!(stdout.lines().any(|l| l.starts_with(&format!("OK {name} "))), "{stdout}");
    }
    assert_eq!(stdout.lines().last(), Some(ALL_GREEN), "{stdout}");
}

#[test]
fn smoke_script_fails_without_the_green_line_when_a_toolchain_is_absent() {
    let out = run_smoke_sh("rust java21");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("OK rust "), "{stdout}");
    assert!(stdout.contains("FAIL java21: JAVA_HOME_21 is not set"), "{stdout}");
    assert!(!stdout.contains(ALL_GREEN), "{stdout}");
}

// ---------------------------------------------------------------------------
// Example recipes
// ---------------------------------------------------------------------------

fn recipe(name: &str) -> (serde_json::Value, ProjectSpec) {
    let text = read(&format!("examples/recipes/{name}.json"));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let spec: ProjectSpec = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name}.json is not a valid POST /projects body: {e}"));
    (value, spec)
}

fn check_spec(spec: &ProjectSpec) {
    validate::name("project", &spec.name).unwrap();
    assert!(spec.git_url.contains("REPLACE_WITH_GITEA_TOKEN"), "{}", spec.git_url);
    assert!(spec.git_url.contains("REPLACE_WITH_GIT_HOST"), "{}", spec.git_url);
    let real = spec
        .git_url
        .replace("REPLACE_WITH_GITEA_TOKEN", "t0ken")
        .replace("REPLACE_WITH_GIT_HOST", "git.example.org");
    let source = validate::git_url(&real, &[], Path::new("/nonexistent-workspace")).unwrap();
    assert!(matches!(source, validate::GitSource::Remote(_)));
    assert!(!spec.subprojects.is_empty());
    let mut paths = BTreeSet::new();
    for sub in &spec.subprojects {
        let normal = validate::subproject_path(&sub.path).unwrap();
        assert!(paths.insert(normal), "{}: subproject {} twice", spec.name, sub.path);
        assert!(!sub.recipes.is_empty(), "{}: {} has no recipes", spec.name, sub.path);
        for (name, command) in &sub.recipes {
            validate::recipe_name(name).unwrap();
            assert!(!command.trim().is_empty());
        }
    }
    assert!(!spec.notify.email.is_empty());
    for email in &spec.notify.email {
        validate::email(email).unwrap();
    }
    for event in &spec.notify.on {
        assert!(NOTIFY_EVENTS.contains(&event.as_str()), "{}: unknown event {event}", spec.name);
    }
}

/// The machine-readable flags the parsers understand, per language and recipe.
fn check_parser_flags(spec: &ProjectSpec) {
    let wanted: &[(&str, &str, &str)] = &[
        ("rust", "lint", "cargo clippy"),
        ("rust", "lint", "--message-format=json"),
        ("rust", "audit", "cargo audit --json"),
        ("python", "lint", "ruff check --output-format=json"),
        ("python", "typecheck", "mypy -O json"),
        ("python", "test", "pytest --tb=line"),
        ("python", "audit", "pip-audit -f json"),
        ("go", "lint", "go vet -json ./..."),
        ("go", "audit", "govulncheck -json ./..."),
        ("typescript", "lint", "npx eslint -f json ."),
        ("typescript", "typecheck", "npx tsc --noEmit"),
    ];
    for sub in &spec.subprojects {
        for (language, recipe, flag) in wanted.iter().filter(|w| w.0 == sub.language) {
            let command = sub.recipes.get(*recipe).unwrap_or_else(|| {
                panic!("{}: {} ({language}) has no {recipe} recipe", spec.name, sub.path)
            });
            assert!(
                command.contains(flag),
                "{}: {} {recipe}: {command:?} lacks {flag:?}",
                spec.name,
                sub.path
            );
        }
    }
}

#[test]
fn example_recipes_are_valid_project_bodies() {
    let (alpha_json, alpha) = recipe("alpha");
    let (_, beta) = recipe("beta");
    let (_, gamma) = recipe("gamma");
    for spec in [&alpha, &beta, &gamma] {
        check_spec(spec);
        check_parser_flags(spec);
    }
    assert_eq!(
        [alpha.name.as_str(), beta.name.as_str(), gamma.name.as_str()],
        ["alpha", "beta", "gamma"]
    );

    // alpha: a monorepo with the root and one SDK per language.
    let languages: BTreeSet<&str> = alpha.subprojects.iter().map(|s| s.language.as_str()).collect();
    for lang in
        ["rust", "python", "go", "typescript", "java", "ruby", "php", "dotnet", "swift", "kotlin"]
    {
        assert!(languages.contains(lang), "alpha lacks a {lang} SDK");
    }
    assert!(alpha.subprojects.iter().any(|s| s.path == "."), "alpha lacks the root");
    assert!(alpha.subprojects.len() >= 11);
    assert!(alpha.notify.auto_patch);
    // The file says auto_patch explicitly, not through the default.
    assert_eq!(alpha_json["notify"]["auto_patch"], serde_json::Value::Bool(true));

    // beta: one Python (Flask) app at the root.
    assert_eq!(beta.subprojects.len(), 1);
    assert_eq!(
        (beta.subprojects[0].path.as_str(), beta.subprojects[0].language.as_str()),
        (".", "python")
    );
    assert!(beta.notify.auto_patch);

    // gamma: one subproject at the root, no automatic patches.
    assert_eq!(gamma.subprojects.len(), 1);
    assert_eq!(gamma.subprojects[0].path, ".");
    assert!(!gamma.notify.auto_patch);
}

// ---------------------------------------------------------------------------
// examples/register-all.sh
// ---------------------------------------------------------------------------

const BEARER: &str = "ct-bearer-Zq81xPq0Lm";
const GIT_TOKEN: &str = "gitea/tok@n3Vq";

fn register_all(envs: &[(&str, &str)], xtrace: bool, tmpdir: &Path) -> Output {
    let mut cmd = Command::new("bash");
    if xtrace {
        cmd.arg("-x");
    }
    cmd.arg(repo_root().join("examples/register-all.sh"))
        .env_remove("CRAFTING_TABLE_TOKEN")
        .env_remove("CRAFTING_TABLE_URL")
        .env_remove("GITEA_TOKEN")
        .env_remove("GIT_HOST")
        .env_remove("GIT_URL_BASE")
        .env_remove("RECIPES_DIR")
        .env("TMPDIR", tmpdir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("bash runs")
}

fn all_output(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn register_all_refuses_missing_variables_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("GITEA_TOKEN", GIT_TOKEN), ("GIT_HOST", "h")], "CRAFTING_TABLE_TOKEN is not set"),
        (&[("CRAFTING_TABLE_TOKEN", BEARER), ("GIT_HOST", "h")], "GITEA_TOKEN is not set"),
        (&[("CRAFTING_TABLE_TOKEN", BEARER), ("GITEA_TOKEN", GIT_TOKEN)], "GIT_HOST is not set"),
        (
            &[("CRAFTING_TABLE_TOKEN", ""), ("GIT_URL_BASE", "/srv/git")],
            "CRAFTING_TABLE_TOKEN is not set",
        ),
    ];
    for (envs, message) in cases {
        let out = register_all(envs, true, tmp.path());
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "wanted {message:?} in {text}"
        );
        assert!(!text.contains(BEARER) && !text.contains(GIT_TOKEN), "a token leaked: {text}");
    }
}

#[test]
fn register_all_never_prints_the_tokens_even_traced_and_failing() {
    let tmp = tempfile::tempdir().unwrap();
    let url = closed_port_url();
    let out = register_all(
        &[
            ("CRAFTING_TABLE_TOKEN", BEARER),
            ("GITEA_TOKEN", GIT_TOKEN),
            ("GIT_HOST", "git.example.org"),
            ("CRAFTING_TABLE_URL", &url),
        ],
        true,
        tmp.path(),
    );
    let text = all_output(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("cannot reach") && text.contains(&url), "{text}");
    for secret in [BEARER, GIT_TOKEN, "gitea%2Ftok%40n3Vq"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0, "temporary files left behind");
}

/// One request as the stand-in server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
    /// Command lines of every process on the machine that showed a token.
    leaking_cmdlines: Vec<String>,
    /// Modes of the curl config files found under TMPDIR during the request.
    config_modes: Vec<u32>,
}

fn cmdlines_containing(needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else { return found };
    for entry in procs.flatten() {
        if let Ok(raw) = fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if needles.iter().any(|n| line.contains(n)) {
                found.push(line);
            }
        }
    }
    found
}

fn config_modes(tmp: &Path) -> Vec<u32> {
    let mut modes = Vec::new();
    for dir in fs::read_dir(tmp).into_iter().flatten().flatten() {
        if let Ok(meta) = fs::metadata(dir.path().join("curl.conf")) {
            modes.push(meta.permissions().mode() & 0o777);
        }
    }
    modes
}

fn serve_one(stream: TcpStream, tmp: &Path, conflict_on_post: &str) -> Option<Seen> {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None; // the test's wake-up connection
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut writer = stream;
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    }
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    // curl is alive and waiting now: look at every command line and at the config file.
    let leaking_cmdlines = cmdlines_containing(&[BEARER, GIT_TOKEN, "gitea%2Ftok%40n3Vq"]);
    let config_modes = config_modes(tmp);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let name = body["name"].as_str().unwrap_or("").to_owned();
    let (status, reply) = if method == "POST" && name == conflict_on_post {
        (
            "409 Conflict",
            r#"{"ok":false,"error":"a project with that name exists","code":"conflict"}"#,
        )
    } else if method == "POST" {
        ("201 Created", r#"{"ok":true,"project":{}}"#)
    } else {
        ("200 OK", r#"{"ok":true,"project":{}}"#)
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    writer.write_all(response.as_bytes()).unwrap();
    Some(Seen { method, path, headers, body, leaking_cmdlines, config_modes })
}

/// Runs register-all.sh against a loopback stand-in for the server that
/// answers 409 to the POST of `conflict_on_post`.
fn register_against_stand_in(
    extra: &[(&str, &str)],
    conflict_on_post: &str,
) -> (Output, Vec<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_path_buf();
    let conflict = conflict_on_post.to_owned();
    let (tx, rx) = mpsc::channel();
    let server = thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let Some(seen) = serve_one(stream, &tmp_path, &conflict) else { break };
            if tx.send(seen).is_err() {
                break;
            }
        }
    });
    let mut envs = vec![("CRAFTING_TABLE_TOKEN", BEARER), ("CRAFTING_TABLE_URL", url.as_str())];
    envs.extend_from_slice(extra);
    let out = register_all(&envs, true, tmp.path());
    // Unblock the accept loop so the thread ends.
    drop(TcpStream::connect(url.trim_start_matches("http://")));
    let mut seen: Vec<Seen> = Vec::new();
    while let Ok(s) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.push(s);
    }
    drop(rx);
    let _ = server.join();
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0, "temporary files left behind");
    (out, seen)
}

#[test]
fn register_all_posts_each_recipe_with_substituted_url_and_updates_existing_ones() {
    let (out, seen) = register_against_stand_in(
        &[("GITEA_TOKEN", GIT_TOKEN), ("GIT_HOST", "git.example.org:3000")],
        "beta",
    );
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "registered alpha\nupdated beta\nregistered gamma\n", "{text}");
    for secret in [BEARER, GIT_TOKEN, "gitea%2Ftok%40n3Vq"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }

    let requests: Vec<(&str, &str)> =
        seen.iter().map(|s| (s.method.as_str(), s.path.as_str())).collect();
    assert_eq!(
        requests,
        [
            ("POST", "/projects"),
            ("POST", "/projects"),
            ("PUT", "/projects/beta"),
            ("POST", "/projects")
        ]
    );
    for s in &seen {
        let auth = s.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str());
        assert_eq!(auth, Some(format!("Bearer {BEARER}").as_str()));
        let ctype = s.headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
        assert_eq!(ctype, Some("application/json"));
        let name = s.body["name"].as_str().unwrap();
        assert_eq!(
            s.body["git_url"].as_str().unwrap(),
            format!("https://oauth2:gitea%2Ftok%40n3Vq@git.example.org:3000/team/{name}.git"),
            "the git token is URL-encoded into the URL"
        );
        // What was sent is still a valid project body.
        let spec: ProjectSpec = serde_json::from_value(s.body.clone()).unwrap();
        assert_eq!(spec.name, name);
        assert!(
            s.leaking_cmdlines.is_empty(),
            "a token was on a command line: {:?}",
            s.leaking_cmdlines
        );
        assert_eq!(
            s.config_modes,
            [0o600],
            "the curl config must exist with mode 600 during the request"
        );
    }
}

#[test]
fn register_all_git_url_base_replaces_the_whole_url() {
    let (out, seen) = register_against_stand_in(&[("GIT_URL_BASE", "/srv/git/")], "");
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(seen.len(), 3, "{text}");
    for s in &seen {
        let name = s.body["name"].as_str().unwrap();
        assert_eq!(s.body["git_url"], format!("/srv/git/{name}"));
    }
}
