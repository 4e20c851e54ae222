#!/usr/bin/env bash
# Debian packages the test suite needs: a PostgreSQL server (Dagster's
# production storage), Chromium (browser tests) and docker-compose (validates
# the compose file without an engine). Installs only what is missing.
set -euo pipefail
needed=()
for pkg in postgresql chromium docker-compose; do
    dpkg -s "$pkg" >/dev/null 2>&1 || needed+=("$pkg")
done
if [ ${#needed[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
fi
