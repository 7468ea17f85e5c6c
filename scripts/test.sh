#!/usr/bin/env bash
# Runs every test: unit, transcript and end-to-end tests against real peers.
# The peers (postfix, dovecot, swaks, curl, mbsync, python3) must be installed; .ci/run does
# that on a fresh machine. With CI set, a test whose peer is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --locked
cargo nextest run --workspace --locked --no-fail-fast "$@"
