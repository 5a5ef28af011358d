//! Embeds the engine in a program of your own: makes a throwaway git
//! repository, registers it, runs one recipe and prints the result.
//!
//! Run with `cargo run --example embed`. Needs the `git` command.

use std::process::Command;
use std::time::Duration;

use crafting_core::{Caller, Config, CraftingTable, JobRequest, ProjectSpec};

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let repo = root.path().join("repos/hello");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("hello.sh"), "echo \"hello from $(git rev-parse --short HEAD)\"\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "hello.sh"],
        &["-c", "user.name=Embed", "-c", "user.email=embed@example.org", "commit", "-qm", "hello"],
    ] {
        let ok = Command::new("git").args(args).current_dir(&repo).status()?.success();
        if !ok {
            return Err(format!("git {args:?} failed").into());
        }
    }

    let mut config = Config::new(root.path().join("engine"));
    config.local_git_roots = vec![root.path().join("repos")];
    let table = CraftingTable::start(config).await?;
    let me = Caller::admin("embed-example");

    let spec: ProjectSpec = serde_json::from_value(serde_json::json!({
        "name": "hello",
        "git_url": repo.display().to_string(),
        "subprojects": [{"path": ".", "language": "shell", "recipes": {"run": "sh hello.sh"}}],
    }))?;
    table.create_project(&me, spec).await?;
    let job = table
        .enqueue(&me, "hello", JobRequest { recipe: "run".into(), ..Default::default() })
        .await?;
    let done = table.wait_job(&me, &job.id, Duration::from_secs(60)).await?;
    let view = table.get_job(&me, &done.id).await?;
    println!("job {} {} (exit code {:?})", done.id, done.status.as_str(), done.exit_code);
    print!("{}", view.log_tail);
    table.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
