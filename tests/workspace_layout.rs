//! The service's default folders sit inside this repository when it is
//! started from a clone; a Rust project checked out there by a job must be a
//! workspace of its own, not a stray member of crafting-table's.

use std::process::Command;

#[test]
fn a_crate_checked_out_under_the_default_workspace_folder_builds_on_its_own() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let job = root.join(format!("workspace/layout-test-{}/job", std::process::id()));
    std::fs::create_dir_all(job.join("src")).unwrap();
    std::fs::write(
        job.join("Cargo.toml"),
        "[package]\nname = \"standalone\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(job.join("src/main.rs"), "fn main() {}\n").unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(&job)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(job.parent().unwrap());
    assert!(
        out.status.success(),
        "cargo took the checkout for a member of this workspace:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
