#!/usr/bin/env bash
# Runs the whole slotgate test suite: formatting, lints, unit tests,
# store tests on SQLite and PostgreSQL, SIPp end-to-end scenarios and the
# SIP torture corpus against the built binary.
#
# Needs: cargo, SIPp (Debian package sip-tester) and a PostgreSQL reachable
# at $SLOTGATE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
# A missing SIPp or PostgreSQL makes the suite fail, never skip.
set -euo pipefail
cd "$(dirname "$0")"

export SLOTGATE_TEST_POSTGRES_URL="${SLOTGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

if ! command -v sipp >/dev/null 2>&1; then
  echo "test.sh: sipp is not installed (apt-get install sip-tester)" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "\nsuite: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
