#!/bin/sh
# The Debian packages mqlab needs, from debian-packages.txt at the top of
# the repository (the only copy of the list).
#
#   sh tests/deps.sh          install the missing ones: as root with
#                             apt-get, otherwise print the exact command
#   sh tests/deps.sh --list   print the whole list, one per line
#   sh tests/deps.sh --list TAG...
#                             only the sections tagged [TAG] (build, run,
#                             recommends, package), as written: debian/rules
#                             makes the .deb's Depends from `--list run`
#   sh tests/deps.sh --npm    only mqtt.js (npm ci into build/npm), as
#                             make test does before its tests; never
#                             fails: without npm or the registry, the
#                             tests that need mqtt.js skip
set -f    # package names are words, never patterns
list="$(dirname "$0")/../debian-packages.txt"
[ -r "$list" ] || { echo "mqlab: cannot read $list" >&2; exit 3; }
# Drop comments and blank lines; one package per word.
pkgs=$(sed -e 's/#.*//' "$list" | tr -s ' \t\r' '\n' | grep -v '^$')
# NodeSource's nodejs (which some machines have instead of Debian's)
# bundles npm and conflicts with Debian's npm package: there, npm is
# already installed and asking apt for it would fail the whole install.
if command -v npm >/dev/null 2>&1 && ! dpkg-query -W -f '${Status}' npm 2>/dev/null | grep -q ' installed$'; then
    pkgs=$(printf '%s\n' $pkgs | grep -vx npm)
fi

if [ "${1:-}" = "--list" ]; then
    if [ $# -le 1 ]; then
        printf '%s\n' $pkgs
        exit 0
    fi
    shift
    # A comment whose first word is [TAG] starts a section; print the
    # packages of the sections whose tag was asked for. Unfiltered: what
    # the list says, not what this machine lacks (npm stays).
    for tag in "$@"; do
        case "$tag" in
            build|run|recommends|package) ;;
            *) echo "mqlab: deps.sh: unknown section '$tag' (build, run, recommends, package)" >&2; exit 2 ;;
        esac
    done
    awk -v want=" $* " '
        /^[ \t]*#[ \t]*\[[a-z-]+\]/ {
            t = $0; sub(/^[ \t]*#[ \t]*\[/, "", t); sub(/\].*/, "", t); tag = t; next }
        { sub(/#.*/, "") }
        NF && index(want, " " tag " ") { for (i = 1; i <= NF; i++) print $i }
        NF && tag == "" { printf "%s:%d: package %s is in no [section]\n", FILENAME, NR, $1 > "/dev/stderr"; bad = 1 }
        END { exit bad ? 2 : 0 }' "$list"
    exit $?
fi

# mqtt.js for the pages graded in headless Chromium: the npm package
# pinned in npm/package.json (the only place its version is written) and
# npm/package-lock.json, installed with `npm ci` into build/npm (not
# committed). npm needs no root. Without npm this says how to get it and
# goes on: only the browser labs and their tests need it.
npm_deps() {
    top="$(dirname "$0")/.."
    dest="$top/build/npm"
    bundle="$dest/node_modules/mqtt/dist/mqtt.min.js"
    if ! command -v npm >/dev/null 2>&1; then
        echo "mqlab: npm is not installed, so mqtt.js (for the browser labs) is not either;"
        echo "  install it with: sudo apt-get install -y nodejs npm   and run make deps again"
        return 0
    fi
    # Up to date when the installed lock is the committed one.
    if [ -f "$bundle" ] && cmp -s "$top/npm/package-lock.json" "$dest/package-lock.json"; then
        return 0
    fi
    mkdir -p "$dest" || return 3
    cp "$top/npm/package.json" "$top/npm/package-lock.json" "$dest/" || return 3
    echo "installing mqtt.js into build/npm (npm ci)"
    (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error) || {
        echo "mqlab: npm ci failed in $dest"; return 3; }
    [ -f "$bundle" ] || { echo "mqlab: $bundle is missing after npm ci"; return 3; }
}

if [ "${1:-}" = "--npm" ]; then
    npm_deps || echo "mqlab: mqtt.js not installed; the tests that need it will skip"
    exit 0
fi

missing=""
for pkg in $pkgs; do
    # dpkg -s also succeeds for a removed package whose config files remain.
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q ' installed$' || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    npm_deps
    exit $?
fi
if [ "$(id -u)" = 0 ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q $missing || exit 3
    npm_deps
    exit $?
else
    echo "mqlab needs these Debian packages:$missing"
    echo "install them with:"
    echo "  sudo apt-get update && sudo apt-get install -y$missing"
    # mqtt.js needs no root: install it now if npm is already here.
    npm_deps
    exit 3
fi
