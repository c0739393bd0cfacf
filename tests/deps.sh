#!/bin/sh
# Installs the Debian packages mqlab needs, when some are missing.
# As root it runs apt-get; otherwise it prints the exact command.
missing=""
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
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
