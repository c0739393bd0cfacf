#!/bin/sh
# Gradescope runs this once, as root, when the autograder image is built,
# from the unzipped bundle (/autograder/source). It installs what mqlab
# needs from Ubuntu's archive and builds the kit in source/kit/.
#
#   sh setup.sh                    install and build
#   sh setup.sh --print-packages   only print the Ubuntu packages it installs
#
# Written for Gradescope's base images Ubuntu 22.04 (jammy) and 24.04
# (noble). The package list is the kit's own debian-packages.txt: every
# name there has the same name in jammy and noble (lua5.4 and liblua5.4-dev
# are in universe, which Ubuntu's Docker images enable), except the browser
# lab's: chromium is only a snap on Ubuntu, and snaps do not run inside
# Gradescope's Docker containers, so chromium, nodejs and npm are left out
# and `make autograder` refuses lab 11. Versions that differ from Debian 12
# (packages.ubuntu.com): python3-paho-mqtt is 1.5.1 on jammy, 1.6.1 on noble
# (and in Debian 12), so noble is the closer match.
set -eu
set -f    # package names are words, never patterns
here=$(cd "$(dirname "$0")" && pwd)
kit="$here/kit"

# The kit's list, minus the browser lab's packages.
pkgs=$(sh "$kit/tests/deps.sh" --list build run)
if [ "${1:-}" = "--print-packages" ]; then
    # shellcheck disable=SC2086  # one word per package
    printf '%s\n' $pkgs
    exit 0
fi
[ $# -eq 0 ] || { echo "usage: sh setup.sh [--print-packages]" >&2; exit 2; }

if [ -r /etc/os-release ]; then
    # shellcheck source=/dev/null
    . /etc/os-release
    echo "setup.sh: ${PRETTY_NAME:-an unknown system}"
    case "${ID:-}:${VERSION_ID:-}" in
        ubuntu:22.04|ubuntu:24.04) ;;
        *) echo "setup.sh: written for Ubuntu 22.04 and 24.04; trying anyway" ;;
    esac
fi
[ "$(id -u)" -eq 0 ] || { echo "setup.sh: run it as root (Gradescope does)" >&2; exit 3; }

export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086  # one word per package
apt-get install -y --no-install-recommends $pkgs

make -C "$kit" -j"$(nproc)"
# A last look: the binary runs, knows the lab, and says what it can do here
# (the sandbox line tells whether run_autograder will need --no-sandbox).
lab=$(sed -n 's/^LAB=//p' "$here/autograder.conf")
"$kit/mqlab" show "$lab" --lang en >/dev/null
"$kit/mqlab" doctor --lang en || true
echo "setup.sh: mqlab is built in $kit for lab $lab"
