#!/usr/bin/env bash
# Installs redis-server (Debian's package) if it is missing: the Redis
# back-end's tests, the cluster example and the benchmark run a real server.
# Safe to run from several test processes at once (one installs, the others
# wait for it).
set -euo pipefail
command -v redis-server >/dev/null && exit 0
exec 9>/tmp/multiproc-install-redis.lock
flock 9
command -v redis-server >/dev/null && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y --no-install-recommends redis-server >/dev/null; }
# The package starts a system-wide server on port 6379; the tests start
# their own on free ports and do not need it.
command -v redis-server >/dev/null
