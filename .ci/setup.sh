#!/usr/bin/env bash
# Makes sure the toolchain components CI uses are installed.
set -euo pipefail
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
command -v python3 >/dev/null || echo "note: python3 is missing; only the benchmark comparison needs it"
# The Redis back-end's tests start their own redis-server.
bash "$(dirname "$0")/install-redis.sh"
