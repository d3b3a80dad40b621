#!/usr/bin/env bash
# Builds strata and runs the whole test suite (unit tests, end-to-end tests of the binaries).
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh
# Run MPI as root where needed (CI runs as root); harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j "${JOBS:-2}" "$@"
