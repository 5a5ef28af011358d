#!/usr/bin/env bash
# Every check a change must pass: formatting, lints (Rust, Dockerfile, shell),
# unit, in-process and end-to-end tests. Installs what the tests need when it
# is missing: git, curl, jq, bubblewrap (apt), the aiosmtpd SMTP server the
# digest tests talk to and ruff for the patch loop tests (pip), shellcheck and
# hadolint (scripts/lint-files.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
say() { printf 'test.sh: %s\n' "$*" >&2; }

# git builds the test repositories; curl and jq drive the README quickstart.
missing=()
for tool in git curl jq python3; do
    have "$tool" || missing+=("$tool")
done
# bubblewrap sandboxes recipes (CRAFTING_ISOLATION=auto picks it); the
# isolation tests run real sandboxes. Its command is bwrap.
have bwrap || missing+=("bubblewrap")
if ((${#missing[@]})); then
    if ! have apt-get; then
        say "please install: ${missing[*]}"
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    say "installing ${missing[*]}"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}"
fi
# Python packages of the tests. A system Python that refuses installs
# (PEP 668, Debian's python3) gets them in the user's site folder instead,
# where python3 still imports them; pip itself comes from apt when missing.
pip_install() {
    if ! python3 -m pip --version >/dev/null 2>&1 && have apt-get; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq python3-pip
    fi
    python3 -m pip install --quiet --disable-pip-version-check "$1" 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --user \
            --break-system-packages "$1"
}
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    say "installing aiosmtpd (the SMTP server of the digest tests)"
    pip_install aiosmtpd
fi
if ! python3 -c 'import ruff' >/dev/null 2>&1; then
    say "installing ruff (the linter the patch loop tests fix findings of)"
    pip_install ruff
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
./scripts/lint-files.sh
if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests; they go first so that the run ends
    # with nextest's summary of the whole suite.
    cargo test --workspace --doc
    cargo nextest run --workspace
else
    cargo test --workspace
fi
