#!/usr/bin/env bash
# The whole test suite: installs and builds (setup.sh), then runs every test
# file with Node's test runner. Privileged tests load BPF for real as root;
# under CI=true one that cannot run fails instead of skipping.
#   --long   bigger trust runs (SOCKBYPASS_LONG=1: e.g. 1,000 x 8 MiB streams); not for CI.
#   --image  the image test builds the full multi-stage image, clang stage included
#            (SOCKBYPASS_IMAGE=1; slow when cold, docs/deploy.md). Without it the image test
#            still builds and runs an image: the Dockerfile's `prebuilt` target, with the
#            package installed from this checkout's npm pack (minutes when cold).
set -euo pipefail
for arg in "$@"; do
  case "$arg" in
    --long) export SOCKBYPASS_LONG=1 ;;
    --image) export SOCKBYPASS_IMAGE=1 ;;
    *) echo "test.sh: unknown option $arg (known: --long, --image)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Formatting and lint (Biome, biome.json): fails on an unformatted file or a lint error.
npx biome ci src test bin
# One file at a time: privileged tests share the kernel and the 2 CPUs.
exec node --test --test-concurrency=1 --test-reporter=spec dist/test/*.test.js
