//! `crafting-table doctor --smoke` on this machine's own toolchains.

use std::process::Command;

#[test]
fn doctor_smoke_passes_present_toolchains_and_lists_missing_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_crafting-table"))
        .args(["doctor", "--smoke"])
        .output()
        .expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "doctor --smoke failed:\n{text}");
    let iso = text.lines().find(|l| l.starts_with("isolation: ")).expect("an isolation line");
    assert!(
        ["bwrap", "user", "none"].iter().any(|m| iso.starts_with(&format!("isolation: {m} "))),
        "{iso}"
    );
    // The test machine has these; their hello-worlds must build and run.
    for present in ["rust", "cargo", "python", "c"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("OK {present} "))),
            "{present} not OK:\n{text}"
        );
    }
    assert!(!text.lines().any(|l| l.starts_with("FAIL ")), "{text}");
    // Every toolchain is accounted for in the table, found or missing.
    for name in crafting_core::toolchains::names() {
        assert!(text.contains(name), "{name} absent from the report:\n{text}");
    }
}
