use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crafting_core::isolation::{self, IsolationMode, IsolationSetting, JobCgroup};
use crafting_core::{CraftingTable, JobRequest, JobStatus};

use crate::common::*;

const BUILD_USER: &str = "crafting-build";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Creates the build user when missing; `false` (with the reason printed)
/// when user-mode tests cannot run here.
fn build_user_ready() -> bool {
    if !is_root() {
        eprintln!("skipping: user isolation needs the tests to run as root");
        return false;
    }
    if isolation::lookup_user(BUILD_USER).is_none() {
        let ok = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", BUILD_USER])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        // Another test process may have created it meanwhile.
        if !ok && isolation::lookup_user(BUILD_USER).is_none() {
            eprintln!("skipping: could not create the build user {BUILD_USER}");
            return false;
        }
    }
    true
}

fn bwrap_ready() -> bool {
    let found = isolation::find_bwrap(&crafting_core::Config::new("/nonexistent"));
    if found.is_none() {
        eprintln!("skipping: bubblewrap is not installed (apt-get install bubblewrap)");
    }
    found.is_some()
}

/// The variables a recipe may see: the allow-list of `recipe_env`, what the
/// runner adds per mode, and what the shell itself sets.
const ALLOWED_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "CI",
    "CRAFTING_JOB_ID",
    "CRAFTING_PROJECT",
    "CRAFTING_RECIPE",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_HOME",
    "GOROOT",
    "GOPATH",
    "JAVA_HOME",
    "JAVA_HOME_21",
    "PYENV_ROOT",
    "NVM_DIR",
    "BUN_INSTALL",
    "DOTNET_ROOT",
    "GRADLE_HOME",
    "MAVEN_HOME",
    "CARGO_TARGET_DIR",
    "PIP_CACHE_DIR",
    "npm_config_cache",
    "GOCACHE",
    "GOMODCACHE",
    "TMPDIR",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_KEY_0",
    "GIT_CONFIG_VALUE_0",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
];

/// Everything a hostile recipe tries; each probe prints `ALLOWED <name>`
/// (followed by what it read) or `denied <name>`.
fn hostile_script(
    t: &CraftingTable,
    victim_job: &str,
    own_project: &str,
    bearer_file: &std::path::Path,
) -> String {
    let ws = t.config().workspace_dir.canonicalize().unwrap();
    let victim_clone = ws.join("victim/.cache");
    let victim_wt = ws.join("victim").join(victim_job);
    let own_clone = ws.join(own_project).join(".cache");
    let ledger = t.config().ledger_path();
    let pid = std::process::id();
    format!(
        r#"try() {{ name=$1; shift; if out=$("$@" 2>&1); then echo "ALLOWED $name"; printf '%s\n' "$out" | head -c 4000; else echo "denied $name"; fi; }}
echo "== env"; env; echo "== end env"
echo "== id $(id)"
echo "== fds"; ls -l /proc/$$/fd; echo "== end fds"
grep CapEff /proc/self/status
try bearer cat {bearer}
try ledger cat {ledger}
try environ cat /proc/{pid}/environ
try list-workspace sh -c 'ls -a {ws} | grep victim'
try victim-clone cat {victim_clone}/config
try victim-clone-list ls {victim_clone}
try victim-worktree cat {victim_wt}/f
try own-hook sh -c 'echo "touch /tmp/pwned" > {own_clone}/hooks/post-checkout'
try own-config sh -c 'printf "[core]\n\thooksPath = /tmp\n" >> {own_clone}/config'
echo "== head $(git rev-parse HEAD)"
"#,
        bearer = bearer_file.display(),
        ledger = ledger.display(),
        ws = ws.display(),
        victim_clone = victim_clone.display(),
        victim_wt = victim_wt.display(),
        own_clone = own_clone.display(),
    )
}

async fn secrets_and_other_projects_are_out_of_reach(mode: IsolationSetting, as_user: bool) {
    // SAFETY: set before the engine starts any thread in this test; nextest
    // runs each test in its own process.
    unsafe {
        std::env::set_var("CRAFTING_SMTP_PASS", "canary-smtp-51a7");
        std::env::set_var("CRAFTING_AGENT_TOKEN", "canary-agent-c0de");
        std::env::set_var("CRAFTING_GITEA_TOKEN", "canary-gitea-77f1");
    }
    let fx = Fixture::new();
    // The build user must be able to walk down to the workspace.
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let victim_repo = fx.repo("victim", &[("f", "victim-secret-source")]);
    let probe_repo = fx.repo("probe", &[("f", "x")]);
    let mut cfg = fx.config();
    cfg.isolation = mode;
    if as_user {
        cfg.build_user = Some(BUILD_USER.into());
    }
    let t = CraftingTable::start(cfg).await.expect("engine starts");
    let expected = match mode {
        IsolationSetting::Bwrap => IsolationMode::Bwrap,
        _ => IsolationMode::User,
    };
    assert_eq!(t.isolation(), expected);
    let bearer_file = t.admin_bearer_file().expect("a fresh engine mints the admin bearer").clone();
    let bearer = std::fs::read_to_string(&bearer_file).unwrap().trim().to_owned();
    assert!(bearer.len() > 16);

    // Another project's job runs meanwhile.
    t.create_project(
        &admin(),
        spec("victim", &victim_repo, ".", &[("long", "echo victim-started; sleep 60")]),
    )
    .await
    .unwrap();
    let victim = t.enqueue(&admin(), "victim", req("long")).await.unwrap();
    for _ in 0..600 {
        if log(&t, &victim.id).await.contains("victim-started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim_wt = t.config().workspace_dir.join("victim").join(&victim.id);
    assert!(victim_wt.join("f").exists(), "the victim's worktree is there while it runs");

    let script = hostile_script(&t, &victim.id, "probe", &bearer_file);
    t.create_project(&admin(), spec("probe", &probe_repo, ".", &[("probe", &script)]))
        .await
        .unwrap();
    let job = run(&t, "probe", req("probe")).await;
    let text = log(&t, &job.id).await;
    eprintln!("{text}");
    let _ = t.cancel_job(&admin(), &victim.id).await;

    // Secrets: never readable, never in the log, the ledger or the records.
    for probe in ["bearer", "ledger", "environ", "list-workspace", "own-hook", "own-config"] {
        assert!(text.contains(&format!("denied {probe}\n")), "{probe} was not denied: {text}");
    }
    let clone = t.config().workspace_dir.join("probe/.cache");
    assert!(!clone.join("hooks/post-checkout").exists());
    assert!(!std::fs::read_to_string(clone.join("config")).unwrap().contains("hooksPath"));
    // Other projects: bubblewrap hides them; in user mode each project's
    // folders let in only its own group.
    for probe in ["victim-clone", "victim-clone-list", "victim-worktree"] {
        assert!(text.contains(&format!("denied {probe}\n")), "{probe} was not denied: {text}");
    }
    assert!(!text.contains("victim-secret-source"), "{text}");

    // Only allow-listed variables.
    let env_start = text.find("\n== env\n").unwrap() + 8;
    let env_block = &text[env_start..env_start + text[env_start..].find("\n== end env").unwrap()];
    for line in env_block.lines().filter(|l| l.contains('=')) {
        let name = line.split('=').next().unwrap();
        assert!(ALLOWED_VARS.contains(&name), "unexpected variable {name} in the recipe: {line}");
    }
    // Only fds 0-2.
    let fd_start = text.find("\n== fds\n").unwrap();
    let fd_block = &text[fd_start..fd_start + text[fd_start..].find("\n== end fds").unwrap()];
    let fds: BTreeSet<&str> = fd_block
        .lines()
        .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last())
        .filter(|f| f.parse::<u32>().is_ok())
        .collect();
    assert_eq!(fds, BTreeSet::from(["0", "1", "2"]), "{fd_block}");
    // No capabilities; the right user.
    let caps = text.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(caps.trim_end().ends_with("0000000000000000"), "{caps}");
    let id_line = text.lines().find(|l| l.starts_with("== id ")).unwrap();
    if as_user {
        let u = isolation::lookup_user(BUILD_USER).unwrap();
        assert!(id_line.contains(&format!("uid={}(", u.uid)), "{id_line}");
        assert!(!id_line.contains("groups=0") && !id_line.contains(",0("), "{id_line}");
        if expected == IsolationMode::User {
            // The project's own group, not the build user's.
            let gid: u32 = id_line
                .split(" gid=")
                .nth(1)
                .unwrap()
                .split(['(', ' '])
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(gid > isolation::DEFAULT_PROJECT_GID_BASE && gid != u.gid, "{id_line}");
        }
    }
    // git works in the worktree against the read-only bare clone.
    let sha = job.sha.clone().unwrap();
    assert!(text.contains(&format!("== head {sha}")), "git rev-parse HEAD failed: {text}");

    let canaries = [bearer.as_str(), "canary-smtp-51a7", "canary-agent-c0de", "canary-gitea-77f1"];
    let mut ledger = std::fs::read(t.config().ledger_path()).unwrap();
    ledger.extend(
        std::fs::read(t.config().ledger_path().with_extension("sqlite3-wal")).unwrap_or_default(),
    );
    let records = serde_json::to_string(&(
        t.get_job(&admin(), &job.id).await.unwrap(),
        t.findings(&admin(), &job.id).await.unwrap(),
        t.list_jobs(&admin(), Default::default()).await.unwrap(),
    ))
    .unwrap();
    for c in canaries {
        assert!(!text.contains(c), "{c} leaked into the log");
        assert!(!ledger.windows(c.len()).any(|w| w == c.as_bytes()), "{c} in the ledger file");
        assert!(!records.contains(c), "{c} in the records");
    }
    assert_eq!(t.integrity_check().await.unwrap(), "ok");
}

#[actix_rt::test]
async fn bwrap_mode_keeps_secrets_and_other_projects_out_of_reach() {
    if !bwrap_ready() {
        return;
    }
    secrets_and_other_projects_are_out_of_reach(IsolationSetting::Bwrap, false).await;
}

#[actix_rt::test]
async fn bwrap_mode_with_a_build_user_keeps_secrets_and_other_projects_out_of_reach() {
    if !bwrap_ready() || !build_user_ready() {
        return;
    }
    secrets_and_other_projects_are_out_of_reach(IsolationSetting::Bwrap, true).await;
}

#[actix_rt::test]
async fn user_mode_keeps_secrets_out_of_reach() {
    if !build_user_ready() {
        return;
    }
    secrets_and_other_projects_are_out_of_reach(IsolationSetting::User, true).await;
}

/// Whether a probe line of [`hostile_script`]'s shape says `denied`.
fn denied(text: &str, probe: &str) -> bool {
    text.contains(&format!("denied {probe}\n"))
}

#[actix_rt::test]
async fn user_mode_gives_each_project_a_group_of_its_own() {
    use std::os::unix::fs::MetadataExt;
    if !build_user_ready() {
        return;
    }
    let fx = Fixture::new();
    // The build user must be able to walk down to the workspace.
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let bee_repo = fx.repo("bee", &[("f", "bee-secret-source")]);
    let ant_repo = fx.repo("ant", &[("f", "ant-source")]);
    let mut cfg = fx.config();
    cfg.isolation = IsolationSetting::User;
    cfg.build_user = Some(BUILD_USER.into());
    let t = CraftingTable::start(cfg.clone()).await.expect("engine starts");
    assert_eq!(t.isolation(), IsolationMode::User);
    let build = isolation::lookup_user(BUILD_USER).unwrap();
    let ws = t.config().workspace_dir.canonicalize().unwrap();
    let caches = t.config().caches_dir.clone();

    // Project bee fills its caches, then keeps running.
    let fill = "mkdir -p \"$CARGO_TARGET_DIR\" && echo bee-cache-secret > \"$CARGO_TARGET_DIR/secret\" \
                && echo bee-started && sleep 60";
    t.create_project(&admin(), spec("bee", &bee_repo, ".", &[("long", fill)])).await.unwrap();
    let bee = t.enqueue(&admin(), "bee", req("long")).await.unwrap();
    for _ in 0..600 {
        if log(&t, &bee.id).await.contains("bee-started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log(&t, &bee.id).await.contains("bee-started"), "{}", log(&t, &bee.id).await);
    let bee_wt = ws.join("bee").join(&bee.id);
    assert!(bee_wt.join("f").exists());

    // Project ant knows every path of bee's.
    let own = ws.join("ant/.cache");
    let script = format!(
        r#"try() {{ name=$1; shift; if out=$("$@" 2>&1); then echo "ALLOWED $name"; printf '%s\n' "$out" | head -c 2000; else echo "denied $name"; fi; }}
echo "== id $(id)"
try bee-dir ls {ws}/bee
try bee-clone-list ls {ws}/bee/.cache
try bee-clone-read cat {ws}/bee/.cache/HEAD
try bee-worktree cat {bee_wt}/f
try bee-job-home ls {ws}/bee/.jobs/{bee_id}/home
try bee-caches-list ls {caches}/bee
try bee-caches-read cat {caches}/bee/cargo-target/secret
try bee-caches-chmod chmod 0777 {caches}/bee
try bee-dir-chmod chmod 0777 {ws}/bee
try bee-proc-cwd sh -c 'cat /proc/[0-9]*/cwd/f 2>/dev/null | grep bee-secret'
try own-hook sh -c 'echo "touch /tmp/pwned" > {own}/hooks/post-checkout'
try own-config sh -c 'printf "[core]\n\thooksPath = /tmp\n" >> {own}/config'
try own-clone-chmod chmod 0777 {own}
try own-cache sh -c 'mkdir -p "$CARGO_TARGET_DIR" && echo cached-by-ant > "$CARGO_TARGET_DIR/mine" && cat "$CARGO_TARGET_DIR/mine"'
echo "== head $(git rev-parse HEAD)"
"#,
        ws = ws.display(),
        bee_wt = bee_wt.display(),
        bee_id = bee.id,
        caches = caches.display(),
        own = own.display(),
    );
    let again = "git rev-parse HEAD && cat \"$CARGO_TARGET_DIR/mine\"";
    t.create_project(
        &admin(),
        spec("ant", &ant_repo, ".", &[("probe", &script), ("again", again)]),
    )
    .await
    .unwrap();
    let job = run(&t, "ant", req("probe")).await;
    let text = log(&t, &job.id).await;
    eprintln!("{text}");
    assert_eq!(job.status, JobStatus::Succeeded, "{text}");
    for probe in [
        "bee-dir",
        "bee-clone-list",
        "bee-clone-read",
        "bee-worktree",
        "bee-job-home",
        "bee-caches-list",
        "bee-caches-read",
        "bee-caches-chmod",
        "bee-dir-chmod",
        "bee-proc-cwd",
        "own-hook",
        "own-config",
        "own-clone-chmod",
    ] {
        assert!(denied(&text, probe), "{probe} was not denied: {text}");
    }
    assert!(!text.contains("bee-secret-source") && !text.contains("bee-cache-secret"), "{text}");
    assert!(text.contains("ALLOWED own-cache\ncached-by-ant\n"), "{text}");
    let sha = job.sha.clone().unwrap();
    assert!(text.contains(&format!("== head {sha}")), "git rev-parse HEAD failed: {text}");
    assert!(!own.join("hooks/post-checkout").exists());
    assert!(!std::fs::read_to_string(own.join("config")).unwrap().contains("hooksPath"));

    // The folders: the service's, each project's own group, nothing for others.
    let meta = |p: &std::path::Path| std::fs::metadata(p).unwrap();
    let (ant_gid, bee_gid) = (meta(&ws.join("ant")).gid(), meta(&ws.join("bee")).gid());
    assert_ne!(ant_gid, bee_gid);
    assert!(
        ant_gid > isolation::DEFAULT_PROJECT_GID_BASE
            && bee_gid > isolation::DEFAULT_PROJECT_GID_BASE
    );
    let id_line = text.lines().find(|l| l.starts_with("== id ")).unwrap();
    assert!(id_line.contains(&format!("uid={}(", build.uid)), "{id_line}");
    assert!(id_line.contains(&format!(" gid={ant_gid}")), "{id_line}");
    for (dir, gid, mode) in [
        (ws.join("ant"), ant_gid, 0o750),
        (ws.join("bee"), bee_gid, 0o750),
        (caches.join("ant"), ant_gid, 0o770),
        (caches.join("bee"), bee_gid, 0o770),
    ] {
        let m = meta(&dir);
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, gid, mode), "{}", dir.display());
    }
    assert_eq!(meta(&own).uid(), 0, "the bare clone stays the service's");
    let mine = caches.join("ant/cargo-target/mine");
    assert_eq!((meta(&mine).uid(), meta(&mine).gid()), (build.uid, ant_gid));
    assert!(!ws.join("ant").join(&job.id).exists(), "the worktree is removed at job end");
    assert!(!ws.join("ant/.jobs").join(&job.id).exists(), "the job folder is removed at job end");

    // Cancelling bee cleans up its worktree and job folder.
    t.cancel_job(&admin(), &bee.id).await.unwrap();
    assert!(!bee_wt.exists() && !ws.join("bee/.jobs").join(&bee.id).exists());

    // The service still prunes old worktrees and gcs clones.
    let direct =
        crafting_core::workspace::Workspace::new(t.config().workspace_dir.clone()).unwrap();
    let url = ant_repo.display().to_string();
    let stale =
        direct.materialize_in_group("ant", &url, None, None, "stale", Some(ant_gid)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = direct.gc(Duration::from_millis(1), Duration::ZERO, &[]).unwrap();
    assert_eq!(report.worktrees_pruned, 1, "{report:?}");
    assert_eq!(report.clones_collected, 2, "{report:?}");
    assert!(!stale.path.exists());
    assert_eq!(meta(&ws.join("ant")).mode() & 0o7777, 0o750);

    // A later job still reads its clone and its caches.
    let again = run(&t, "ant", req("again")).await;
    let text = log(&t, &again.id).await;
    assert_eq!(again.status, JobStatus::Succeeded, "{text}");
    assert!(text.contains("cached-by-ant"), "{text}");

    // Deleting a project removes its folders, caches included.
    t.delete_project(&admin(), "bee").await.unwrap();
    assert!(!ws.join("bee").exists() && !caches.join("bee").exists());
    assert_eq!(t.integrity_check().await.unwrap(), "ok");

    // At start-up, folders an older version left open are closed again, and
    // folders of no registered project are closed.
    let mode = |m: u32| std::fs::Permissions::from_mode(m);
    std::fs::set_permissions(ws.join("ant"), mode(0o711)).unwrap();
    std::os::unix::fs::chown(caches.join("ant"), Some(build.uid), Some(build.gid)).unwrap();
    std::fs::set_permissions(caches.join("ant"), mode(0o755)).unwrap();
    std::fs::create_dir_all(caches.join("ghost/x")).unwrap();
    std::fs::set_permissions(caches.join("ghost"), mode(0o755)).unwrap();
    let t2 = CraftingTable::start(cfg).await.expect("engine restarts");
    for (dir, gid, mode) in [(ws.join("ant"), ant_gid, 0o750), (caches.join("ant"), ant_gid, 0o770)]
    {
        let m = meta(&dir);
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, gid, mode), "{}", dir.display());
    }
    assert_eq!((meta(&mine).uid(), meta(&mine).gid()), (build.uid, ant_gid));
    assert_eq!(meta(&caches.join("ghost")).mode() & 0o7777, 0o700);
    let after = run(&t2, "ant", req("again")).await;
    assert_eq!(after.status, JobStatus::Succeeded, "{}", log(&t2, &after.id).await);
}

#[test]
fn a_project_gid_base_that_cannot_work_is_refused() {
    let with =
        |v: &'static str| move |k: &str| (k == "CRAFTING_PROJECT_GID_BASE").then(|| v.to_owned());
    for v in ["0", "4294000000", "4294967296", "-5", "many"] {
        let e = crafting_core::Config::from_vars(with(v)).expect_err(v);
        assert_eq!(e.code(), "invalid_config", "{v}: {e}");
        assert!(e.to_string().contains("CRAFTING_PROJECT_GID_BASE"), "{e}");
    }
    assert_eq!(crafting_core::Config::from_vars(with("300000")).unwrap().project_gid_base, 300000);
    assert_eq!(crafting_core::Config::from_vars(|_| None).unwrap().project_gid_base, 200000);
    assert_eq!(isolation::project_gid(200000, 7).unwrap(), 200007);
    assert!(isolation::project_gid(200000, 0).is_err());
    assert!(isolation::project_gid(200000, 1_000_001).is_err());
    assert!(isolation::project_gid(0, 1).is_err());
    // A base set in code is refused at start-up in user mode.
    if build_user_ready() {
        let mut cfg = crafting_core::Config::new("/nonexistent");
        cfg.isolation = IsolationSetting::User;
        cfg.project_gid_base = 0;
        let e = isolation::detect(&cfg).unwrap_err();
        assert!(e.to_string().contains("CRAFTING_PROJECT_GID_BASE=0"), "{e}");
    }
}

#[actix_rt::test]
async fn hooks_submodules_and_symlinks_in_the_repository_do_nothing() {
    let fx = Fixture::new();
    let marker = fx.dir.path().join("hook-ran");
    let hook = format!("#!/bin/sh\ntouch {}\n", marker.display());
    // A submodule source the repository points at through a local path.
    fx.repo("modsrc", &[("modfile", "from the submodule")]);
    let repo = fx.repo("tricky", &[("f", "x")]);
    // A committed bare repository carrying hooks, and core.hooksPath into it.
    let bare = repo.join("evil.git");
    git(&repo, &["init", "-q", "--bare", "evil.git"]);
    for name in ["post-checkout", "pre-commit", "post-merge", "reference-transaction"] {
        let p = bare.join("hooks").join(name);
        std::fs::write(&p, &hook).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(repo.join("githooks")).unwrap();
    let p = repo.join("githooks/post-checkout");
    std::fs::write(&p, &hook).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    write(&repo, ".gitattributes", "* filter=evil\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["-c", "protocol.file.allow=always", "submodule", "add", "-q", "../modsrc", "mod"]);
    std::os::unix::fs::symlink("/etc", repo.join("sub")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "tricks"]);
    assert!(git(&repo, &["ls-files", "--stage", "mod"]).starts_with("160000"));

    let t = fx.start().await;
    let recipe = "ls -A mod | wc -l; test -e mod/modfile && echo SUBMODULE-FETCHED; \
                  test -x evil.git/hooks/post-checkout && echo hooks-are-just-files; \
                  cat .gitmodules";
    let mut s = spec("tricky", &repo, ".", &[("look", recipe)]);
    let mut through_link = s.subprojects[0].clone();
    through_link.path = "sub".into();
    through_link.recipes = [("t".to_owned(), "cat passwd".to_owned())].into();
    s.subprojects.push(through_link);
    t.create_project(&admin(), s).await.unwrap();
    let job = run(&t, "tricky", JobRequest { subproject: Some(".".into()), ..req("look") }).await;
    let text = log(&t, &job.id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{text}");
    let said = |what: &str| text.lines().any(|l| l.trim() == what);
    assert!(said("hooks-are-just-files"), "{text}");
    assert!(said("0"), "the submodule folder is empty: {text}");
    assert!(!said("SUBMODULE-FETCHED"), "a submodule was fetched: {text}");
    assert!(!marker.exists(), "a hook of the repository ran");
    let job = run(&t, "tricky", JobRequest { subproject: Some("sub".into()), ..req("t") }).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.reason.as_deref().unwrap_or("").contains("leaves the repository"), "{job:?}");
    assert!(!log(&t, &job.id).await.contains("root:"), "the recipe must not have run");
    // Nothing the checkout did ran a hook either.
    assert!(!marker.exists(), "a hook of the repository ran");
    let cfg =
        std::fs::read_to_string(t.config().workspace_dir.join("tricky/.cache/config")).unwrap();
    assert!(!cfg.contains("url"), "no remote, no submodule in the clone's config: {cfg}");
}

#[actix_rt::test]
async fn a_fork_bomb_is_contained_and_the_engine_keeps_serving() {
    if !JobCgroup::available() {
        eprintln!("skipping: no writable pids cgroup here, a fork bomb would not be contained");
        return;
    }
    let fx = Fixture::new();
    let bomb_repo = fx.repo("bomb", &[("f", "x")]);
    let calm_repo = fx.repo("calm", &[("f", "x")]);
    let mut cfg = fx.config();
    cfg.max_processes = 64;
    let t = CraftingTable::start(cfg).await.unwrap();
    // First prove the limit holds: a recipe reads its own cgroup's limit.
    let check = "cat /proc/self/cgroup | grep pids; \
                 cat /sys/fs/cgroup/pids/crafting-table/$CRAFTING_JOB_ID/pids.max 2>/dev/null \
                 || cat /sys/fs/cgroup/crafting-table/$CRAFTING_JOB_ID/pids.max";
    // dash refuses `:` as a function name; bash takes it.
    let bomb = "bash -c ':(){ :|:& };:'; sleep 100";
    let mut s = spec("bomb", &bomb_repo, ".", &[("check", check), ("bomb", bomb)]);
    s.subprojects[0].timeout_secs = Some(30);
    t.create_project(&admin(), s).await.unwrap();
    let checked = run(&t, "bomb", req("check")).await;
    let text = log(&t, &checked.id).await;
    assert!(text.lines().any(|l| l.trim() == "64"), "the job's pids.max is not 64: {text}");
    assert!(text.contains(&format!("crafting-table/{}", checked.id)), "{text}");

    t.create_project(&admin(), spec("calm", &calm_repo, ".", &[("t", "echo calm-done")]))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let bomb_job = t.enqueue(&admin(), "bomb", req("bomb")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The engine answers and another project's job completes meanwhile.
    let calm = run(&t, "calm", req("t")).await;
    assert_eq!(calm.status, JobStatus::Succeeded);
    assert!(log(&t, &calm.id).await.contains("calm-done"));
    assert!(t.stats().await.unwrap().running >= 1);
    let still = t.job_status(&admin(), &bomb_job.id).await.unwrap();
    assert_eq!(still.status, JobStatus::Running, "the bomb is still contained, not finished");
    let done = t.wait_job(&admin(), &bomb_job.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(done.status, JobStatus::TimedOut, "{done:?}");
    assert_eq!(done.reason.as_deref(), Some("timed out after 30 s"));
    assert!(started.elapsed() < Duration::from_secs(90));
    assert!(processes_of(&bomb_job.id).is_empty(), "bomb processes survived");
    assert!(JobCgroup::existing(&bomb_job.id).is_none(), "the job's cgroup was not removed");
    assert_eq!(run(&t, "calm", req("t")).await.status, JobStatus::Succeeded);
    assert_eq!(t.integrity_check().await.unwrap(), "ok");
}

/// Under bubblewrap the job's folders are mounted back into the hidden
/// workspace wherever the service keeps its folders. Under /tmp it always
/// worked, because the job's own /tmp, mounted over it, made room for them;
/// elsewhere (`./workspace`, the image's `/workspace`) the read-only empty
/// workspace refused them and every job failed.
#[actix_rt::test]
async fn bwrap_mode_runs_jobs_with_the_service_folders_outside_tmp() {
    let base = std::path::Path::new("/var/tmp");
    if !bwrap_ready() || !base.is_dir() {
        return;
    }
    let fx = Fixture::new_in(base);
    let repo = fx.repo("outside", &[("f", "the-content")]);
    let mut cfg = fx.config();
    cfg.isolation = IsolationSetting::Bwrap;
    let t = CraftingTable::start(cfg).await.expect("engine starts");
    assert_eq!(t.isolation(), IsolationMode::Bwrap);
    let ws = t.config().workspace_dir.canonicalize().unwrap();
    let data = t.config().data_dir.canonicalize().unwrap();
    let cmd = format!(
        "cat f; echo; touch made-here && echo worktree-writable; \
         touch {ws}/x 2>/dev/null && echo WORKSPACE-WRITABLE || echo workspace-read-only; \
         echo data-entries=$(ls -A {data} | wc -l)",
        ws = ws.display(),
        data = data.display()
    );
    t.create_project(&admin(), spec("outside", &repo, ".", &[("look", &cmd)])).await.unwrap();
    let job = run(&t, "outside", req("look")).await;
    let text = log(&t, &job.id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{text}");
    for expected in ["the-content", "worktree-writable", "workspace-read-only", "data-entries=0"] {
        assert!(text.contains(expected), "{expected} missing: {text}");
    }
}

/// A child that leaves the recipe's session, clears its environment and
/// tries to move itself out of the job's pids cgroup: neither the process
/// group nor `CRAFTING_JOB_ID` finds it, so in the modes that seal the
/// cgroup its member list must, and the child must not outlive the job.
async fn an_escaping_child_is_stopped(mode: IsolationSetting, as_user: bool) {
    let fx = Fixture::new();
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let repo = fx.repo("escape", &[("f", "x")]);
    let mut cfg = fx.config();
    cfg.isolation = mode;
    cfg.build_user = as_user.then(|| BUILD_USER.to_owned());
    let t = CraftingTable::start(cfg).await.expect("engine starts");
    let tag = sleep_tag(1200 + u32::from(as_user));
    let leave = "for f in /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/pids/crafting-table/cgroup.procs; \
                 do echo $$ > $f; done 2>/dev/null";
    let cmd = format!(
        "setsid sh -c '{leave}; exec env -i sleep {tag}' > /dev/null 2>&1 & echo started; sleep 1"
    );
    t.create_project(&admin(), spec("escape", &repo, ".", &[("run", &cmd)])).await.unwrap();
    let job = t.enqueue(&admin(), "escape", req("run")).await.unwrap();
    assert!(wait_for_args(std::slice::from_ref(&tag), Duration::from_secs(30)).await);
    let job = t.wait_job(&admin(), &job.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(pids_with_arg(&tag).is_empty(), "sleep {tag} left its job and outlived it");
    assert!(JobCgroup::existing(&job.id).is_none(), "the job's cgroup was not removed");
}

#[actix_rt::test]
async fn a_child_escaping_session_and_environment_is_stopped_in_user_mode() {
    if !JobCgroup::available() || !build_user_ready() {
        return;
    }
    an_escaping_child_is_stopped(IsolationSetting::User, true).await;
}

#[actix_rt::test]
async fn a_child_escaping_session_and_environment_is_stopped_under_bwrap() {
    if !JobCgroup::available() || !bwrap_ready() {
        return;
    }
    an_escaping_child_is_stopped(IsolationSetting::Bwrap, false).await;
}

#[actix_rt::test]
async fn a_recipe_filling_the_disk_is_stopped_at_the_quota() {
    let fx = Fixture::new();
    let repo = fx.repo("hog", &[("f", "x")]);
    let mut cfg = fx.config();
    cfg.job_disk_max_bytes = 50_000_000;
    cfg.disk_check_interval = Duration::from_millis(200);
    let t = CraftingTable::start(cfg).await.unwrap();
    let hog = "i=0; while :; do head -c 5000000 /dev/zero > blob$i; i=$((i+1)); sleep 0.05; done";
    let mut s = spec("hog", &repo, ".", &[("hog", hog), ("ok", "echo still-serving")]);
    s.subprojects[0].timeout_secs = Some(120);
    t.create_project(&admin(), s).await.unwrap();
    let job = run(&t, "hog", req("hog")).await;
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.reason.as_deref(), Some("disk quota of 50000000 bytes exceeded"));
    let text = log(&t, &job.id).await;
    assert!(text.contains("more than CRAFTING_JOB_DISK_MAX_BYTES=50000000"), "{text}");
    assert!(!t.config().workspace_dir.join("hog").join(&job.id).exists());
    assert!(processes_of(&job.id).is_empty());
    let ok = run(&t, "hog", req("ok")).await;
    assert_eq!(ok.status, JobStatus::Succeeded);
    assert_eq!(t.integrity_check().await.unwrap(), "ok");
}

#[actix_rt::test]
async fn forcing_a_mode_the_host_lacks_stops_start_up_with_what_to_install() {
    let fx = Fixture::new();
    let empty = tempfile::tempdir().unwrap();
    let mut cfg = fx.config();
    cfg.isolation = IsolationSetting::Bwrap;
    cfg.bwrap_path = Some(empty.path().to_path_buf());
    let e = CraftingTable::start(cfg.clone()).await.err().expect("start-up must fail");
    assert_eq!(e.code(), "isolation_unavailable");
    let msg = e.to_string();
    assert!(msg.contains("apt-get install bubblewrap"), "{msg}");
    assert!(msg.contains(&empty.path().display().to_string()), "{msg}");

    // A build user that does not exist is named, with how to create it.
    cfg.isolation = IsolationSetting::User;
    cfg.build_user = Some("no-such-build-user".into());
    let e = isolation::detect(&cfg).unwrap_err();
    assert!(e.to_string().contains("useradd --system --no-create-home no-such-build-user"), "{e}");

    // Auto without bubblewrap falls back: user mode when root and the build
    // user exists, else none.
    cfg.isolation = IsolationSetting::Auto;
    cfg.build_user = None;
    let got = isolation::detect(&cfg).unwrap();
    let user_possible = is_root() && isolation::lookup_user(BUILD_USER).is_some();
    assert_eq!(got.mode, if user_possible { IsolationMode::User } else { IsolationMode::None });

    // Auto with bubblewrap installed picks it.
    if bwrap_ready() {
        let t = fx.start().await;
        assert_eq!(t.isolation(), IsolationMode::Bwrap);
    }
}

#[actix_rt::test]
async fn a_subproject_can_opt_out_of_the_network_under_bwrap() {
    if !bwrap_ready() {
        return;
    }
    let fx = Fixture::new();
    let repo = fx.repo("net", &[("f", "x")]);
    let t = fx.start().await;
    assert_eq!(t.isolation(), IsolationMode::Bwrap);
    let show = "echo interfaces=$(tail -n +3 /proc/net/dev | wc -l)";
    let mut s = spec("net", &repo, ".", &[("show", show)]);
    let mut offline = s.subprojects[0].clone();
    offline.path = "off".into();
    offline.network = Some(false);
    std::fs::create_dir_all(repo.join("off")).unwrap();
    write(&repo, "off/keep", "");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "off"]);
    s.subprojects.push(offline);
    t.create_project(&admin(), s).await.unwrap();
    let online = run(&t, "net", JobRequest { subproject: Some(".".into()), ..req("show") }).await;
    let off = run(&t, "net", JobRequest { subproject: Some("off".into()), ..req("show") }).await;
    let count = |text: String| -> u32 {
        let l = text.lines().find(|l| l.starts_with("interfaces=")).unwrap().to_owned();
        l["interfaces=".len()..].trim().parse().unwrap()
    };
    assert_eq!(count(log(&t, &off.id).await), 1, "only loopback without the network");
    let host = std::fs::read_to_string("/proc/net/dev").unwrap().lines().count() as u32 - 2;
    assert_eq!(count(log(&t, &online.id).await), host, "the host's interfaces by default");
}
