#!/bin/sh
# The README's configuration table is what the binary's option tables generate now
# (tools/config_table.py); fails when an option, default or variable changed without it.
set -u
bin=${EVPIPE_BIN:-build/evpipe}
python3 tools/config_table.py --bin "$bin" --check README.md
