#!/bin/sh
# Never connects, never ends.
exec sleep 4101
