#!/usr/bin/env bash
# Runs every benchmark and prints one table per group, each figure next to a
# baseline measured in the same run. Figures only: nothing fails on speed.
#
#   bench/run.sh            # the full run (about 10 minutes on 2 cores)
#   BENCH_QUICK=1 bench/run.sh   # smaller sizes, for a first look
#   BENCH_GROUPS=api bench/run.sh # only some groups: engine, parsers, api
#
# Needs: cargo, git, curl; wrk for the API figures (installed with apt-get
# when missing and possible; skipped with a note otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bench: %s\n' "$*" >&2; }

if [[ -n ${BENCH_QUICK:-} ]]; then
    export BENCH_JOBS=${BENCH_JOBS:-50} BENCH_LOG_MB=${BENCH_LOG_MB:-256}
    export BENCH_LEDGER_JOBS=${BENCH_LEDGER_JOBS:-100000}
    export BENCH_LEDGER_FINDINGS=${BENCH_LEDGER_FINDINGS:-1000000}
fi

say "building release binaries"
cargo build --release --quiet -p crafting-table --benches --examples

groups=${BENCH_GROUPS:-engine,parsers,api}
wants() { [[ ",$groups," == *",$1,"* ]]; }

if wants engine; then
    echo "## Engine"
    cargo bench --quiet --bench engine 2>/dev/null
    echo
fi
if wants parsers; then
    echo "## Parsers"
    cargo run --release --quiet -p crafting-parsers --example parse_bench
    echo
fi
wants api || exit 0
echo "## HTTP API"
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
    say "installing wrk"
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } || true
fi
if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk is not installed: API figures skipped"
    exit 0
fi
work=$(mktemp -d)
server=""
cleanup() {
    if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/repos/small"
git -C "$work/repos/small" init -q -b main
echo hello > "$work/repos/small/file.txt"
git -C "$work/repos/small" add -A
git -C "$work/repos/small" -c user.name=Bench -c user.email=bench@example.org commit -qm one
# The binary cargo built above, wherever CARGO_TARGET_DIR puts it.
target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target=$PWD/$target
bin=$target/release/crafting-table
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(
    cd "$work"
    CRAFTING_BIND=127.0.0.1:$port CRAFTING_LOCAL_GIT_ROOTS="$work/repos" RUST_LOG=warn \
        exec "$bin" serve >"$work/server.log" 2>&1
) &
server=$!
for _ in $(seq 1 100); do
    curl -s "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
token=$(cat "$work/data/admin-bearer.txt")
auth=(-H "Authorization: Bearer $token" -H "Content-Type: application/json")
curl -s "${auth[@]}" -d "{\"name\":\"small\",\"git_url\":\"$work/repos/small\",\"subprojects\":[{\"path\":\".\",\"language\":\"shell\",\"recipes\":{\"t\":\"echo hi\"}}]}" \
    "http://127.0.0.1:$port/projects" >/dev/null
job=""
for _ in $(seq 1 60); do
    job=$(curl -s "${auth[@]}" -d '{"recipe":"t"}' "http://127.0.0.1:$port/projects/small/jobs" | sed -n 's/.*"job_id":"\([0-9a-f]*\)".*/\1/p')
done
sleep 2
cat >"$work/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
for path in "/jobs/$job" "/jobs?limit=50" "/healthz"; do
    echo "### GET $path, 64 connections, 10 s"
    wrk -t2 -c64 -d10s --latency -s "$work/auth.lua" "http://127.0.0.1:$port$path" |
        grep -E "Requests/sec|99%|50%|Non-2xx|Socket errors" || true
done
