#!/usr/bin/env bash
# Idempotent setup for walweave's tests and demo on Debian: installs PostgreSQL (15+), GNU tar,
# lz4 and zstd from Debian packages when they are missing. Safe to run again.
set -euo pipefail

need=()
have_pg=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  v=$(basename "$(dirname "$d")")
  if [ "${v%%.*}" -ge 15 ] && [ -x "$d/postgres" ] && [ -x "$d/pg_verifybackup" ]; then have_pg=$d; break; fi
done
[ -n "$have_pg" ] || need+=(postgresql postgresql-contrib)
command -v tar >/dev/null || need+=(tar)
command -v lz4 >/dev/null || need+=(lz4)
command -v zstd >/dev/null || need+=(zstd)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Do not let the package start the distribution's own cluster: the tests start their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
