#!/bin/sh
# Megabytes a second on stdout and stderr, until killed.
yes 4103-flood-stderr >&2 &
exec yes 4103-flood
