#!/usr/bin/env bash
# Registers the example projects (examples/recipes/*.json) with a running
# crafting-table: POST /projects for each; a project that already exists is
# updated in place with PUT /projects/<name>.
#
# Required:
#   CRAFTING_TABLE_TOKEN  bearer of the token the projects will belong to
#                         (mint one with POST /admin/tokens, or use the admin
#                         bearer from <data>/admin-bearer.txt)
#   GITEA_TOKEN           token for cloning from the git host; it replaces
#                         REPLACE_WITH_GITEA_TOKEN in each git_url
#   GIT_HOST              host (and port) of the git server; it replaces
#                         REPLACE_WITH_GIT_HOST
# Optional:
#   CRAFTING_TABLE_URL    server address (default http://127.0.0.1:8810)
#   GIT_URL_BASE          replaces each git_url entirely with
#                         "$GIT_URL_BASE/<project name>", e.g. /srv/git for
#                         local repositories /srv/git/alpha, /srv/git/beta, ...
#                         (the server must list that folder in
#                         CRAFTING_LOCAL_GIT_ROOTS). GITEA_TOKEN and GIT_HOST
#                         are then not needed.
#   RECIPES_DIR           where the *.json bodies are (default: recipes/ next
#                         to this script)
#
# Needs bash, curl and jq. The tokens are never printed, never put on a
# command line (the Authorization header reaches curl through a mode-600
# config file, the git token reaches jq through the environment) and never
# traced: xtrace is switched off for the whole script, also under `bash -x`.
{ set +x; } 2>/dev/null
set -euo pipefail
umask 077

prog=register-all

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 2
}

# Fails when the variable named $1 is unset or empty; never shows its value.
require() {
    if [[ -z ${!1:-} ]]; then
        die "$1 is not set: $2"
    fi
}

for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed but not installed"
done

require CRAFTING_TABLE_TOKEN "export the bearer of the token that should own the projects"
if [[ -z ${GIT_URL_BASE:-} ]]; then
    require GITEA_TOKEN "export the git host's access token (or set GIT_URL_BASE for local repositories)"
    require GIT_HOST "export the git host, e.g. git.example.org (or set GIT_URL_BASE for local repositories)"
fi

# The bearer goes into a curl config line between double quotes; refuse the
# few characters that would break out of it rather than guess an escaping.
if [[ $CRAFTING_TABLE_TOKEN == *[$'"\\\n\r']* ]]; then
    die "CRAFTING_TABLE_TOKEN contains a quote, backslash or line break; it cannot be a bearer"
fi

base_url=${CRAFTING_TABLE_URL:-http://127.0.0.1:8810}
base_url=${base_url%/}
recipes_dir=${RECIPES_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/recipes}
[[ -d $recipes_dir ]] || die "no recipes folder at $recipes_dir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/register-all.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
auth=$tmp/curl.conf
printf 'header = "Authorization: Bearer %s"\n' "$CRAFTING_TABLE_TOKEN" >"$auth"
chmod 600 "$auth"

# Hides the git token from anything shown to the user (server replies,
# curl errors), in case one of them echoes a URL back.
scrub() {
    local text=$1
    if [[ -n ${GITEA_TOKEN:-} ]]; then
        text=${text//"$GITEA_TOKEN"/***}
    fi
    text=${text//"$CRAFTING_TABLE_TOKEN"/***}
    printf '%s' "$text"
}

# Writes the request body for recipe file $1 to $2.
render() {
    if [[ -n ${GIT_URL_BASE:-} ]]; then
        jq --arg base "${GIT_URL_BASE%/}" '.git_url = ($base + "/" + .name)' "$1" >"$2"
    else
        jq '.git_url |= (gsub("REPLACE_WITH_GITEA_TOKEN"; env.GITEA_TOKEN | @uri)
                         | gsub("REPLACE_WITH_GIT_HOST"; env.GIT_HOST))' "$1" >"$2"
    fi
}

# request METHOD PATH BODY_FILE: prints the HTTP status; the reply goes to $tmp/reply.
request() {
    local err=$tmp/curl.err status
    if ! status=$(curl --silent --show-error --config "$auth" \
        --request "$1" \
        --header 'Content-Type: application/json' \
        --data-binary "@$3" \
        --output "$tmp/reply" \
        --write-out '%{http_code}' \
        --connect-timeout 10 --max-time 60 \
        "$base_url$2" 2>"$err"); then
        printf '%s: cannot reach %s: %s\n' "$prog" "$base_url" "$(scrub "$(cat "$err")")" >&2
        return 1
    fi
    printf '%s' "$status"
}

shopt -s nullglob
files=("$recipes_dir"/*.json)
((${#files[@]} > 0)) || die "no *.json in $recipes_dir"

failed=0
for file in "${files[@]}"; do
    name=$(jq -r '.name // empty' "$file") || die "$file is not valid JSON"
    [[ -n $name ]] || die "$file has no \"name\""
    body=$tmp/$name.json
    render "$file" "$body"

    # An unreachable server fails the same way for every project: stop at once.
    status=$(request POST /projects "$body") || exit 1
    action=registered
    if [[ $status == 409 ]]; then
        action=updated
        status=$(request PUT "/projects/$name" "$body") || exit 1
    fi
    if [[ $status == 2?? ]]; then
        printf '%s %s\n' "$action" "$name"
    else
        reply=$(jq -r '.error // empty' "$tmp/reply" 2>/dev/null || true)
        [[ -n $reply ]] || reply=$(head -c 500 "$tmp/reply")
        printf '%s: %s: HTTP %s: %s\n' "$prog" "$name" "$status" "$(scrub "$reply")" >&2
        failed=1
    fi
done
exit "$failed"
