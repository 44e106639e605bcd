#!/usr/bin/env bash
# The main job: install and build (setup.sh), then load the bypass into a
# cgroup of its own, prove it (packets on lo, throughput and latency with the
# bypass on vs off) and unload.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/sockbypass.js demo "$@"
