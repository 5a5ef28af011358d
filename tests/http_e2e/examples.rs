use std::process::Command;

use serde_json::json;

use crate::support::*;

/// Runs examples/register-all.sh against the server; returns (exit code, stdout + stderr).
fn register_all(server: &Server, env: &[(&str, &str)]) -> (i32, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/register-all.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("CRAFTING_TABLE_URL", &server.base)
        .env("CRAFTING_TABLE_TOKEN", &server.admin)
        .envs(env.iter().copied())
        .output()
        .expect("bash runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn register_all_registers_the_three_examples_and_never_shows_a_token() {
    let server = Server::start(&[]);
    let repos = server.repos_dir();
    for name in ["alpha", "beta", "gamma"] {
        make_repo(&repos, name);
    }

    // Local repositories standing in for the git host.
    let base = repos.display().to_string();
    let (code, text) = register_all(&server, &[("GIT_URL_BASE", base.as_str())]);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains(&server.admin), "the bearer appeared in the output:\n{text}");
    let (_, list) = server.get("/projects", &server.admin);
    let mut names: Vec<&str> =
        list["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    let (_, alpha) = server.get("/projects/alpha", &server.admin);
    assert_eq!(alpha["project"]["git_url"], json!(format!("{base}/alpha")));
    assert!(alpha["project"]["subprojects"].as_array().unwrap().len() > 5);
    assert_eq!(alpha["project"]["notify"]["auto_patch"], json!(true));

    // The forge form: the git token goes into the stored URL, and is neither
    // printed by the script nor shown by the API. A second run updates.
    let gitea = "gitea-canary-4f19c2";
    let (code, text) =
        register_all(&server, &[("GITEA_TOKEN", gitea), ("GIT_HOST", "git.example.invalid")]);
    assert_eq!(code, 0, "{text}");
    for secret in [gitea, server.admin.as_str()] {
        assert!(!text.contains(secret), "a token appeared in the output:\n{text}");
    }
    let (_, gamma) = server.get_text("/projects/gamma", &server.admin);
    assert!(!gamma.contains(gitea), "the API showed the git token: {gamma}");
    assert!(gamma.contains("https://***@git.example.invalid/"), "{gamma}");

    // A missing variable is refused by name, before anything is sent.
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/register-all.sh"))
        .env("CRAFTING_TABLE_URL", &server.base)
        .env_remove("CRAFTING_TABLE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CRAFTING_TABLE_TOKEN is not set"));
}
