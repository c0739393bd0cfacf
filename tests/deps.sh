#!/bin/sh
# The Debian packages mqlab needs, from debian-packages.txt at the top of
# the repository (the only copy of the list).
#
#   sh tests/deps.sh          install the missing ones: as root with
#                             apt-get, otherwise print the exact command
#   sh tests/deps.sh --list   print the whole list, one per line
set -f    # package names are words, never patterns
list="$(dirname "$0")/../debian-packages.txt"
[ -r "$list" ] || { echo "mqlab: cannot read $list" >&2; exit 3; }
# Drop comments and blank lines; one package per word.
pkgs=$(sed -e 's/#.*//' "$list" | tr -s ' \t\r' '\n' | grep -v '^$')

if [ "${1:-}" = "--list" ]; then
    printf '%s\n' $pkgs
    exit 0
fi

missing=""
for pkg in $pkgs; do
    # dpkg -s also succeeds for a removed package whose config files remain.
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q ' installed$' || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q $missing || exit 3
else
    echo "mqlab needs these Debian packages:$missing"
    echo "install them with:"
    echo "  sudo apt-get update && sudo apt-get install -y$missing"
    exit 3
fi
