#!/usr/bin/env bash
# Idempotent setup for walweave's tests and demo on Debian: installs PostgreSQL (15+), GNU tar,
# lz4 and zstd from Debian packages when they are missing (and, when asked, the version
# matrix's server builds: see the end). Safe to run again.
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
# tc and ip for the black-hole test (a private network namespace drops one connection's packets).
command -v tc >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)

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

# A second language for the server's messages: a test runs PostgreSQL with lc_messages =
# 'de_DE.UTF-8' to show that no decision depends on English message text (Debian's
# PostgreSQL ships the translations; the locale itself must be generated).
if ! locale -a 2>/dev/null | grep -qi '^de_DE\.utf-\?8$'; then
  echo "setup: generating the de_DE.UTF-8 locale" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v locale-gen >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends locales >&2
  fi
  $sudo sed -i 's/^# *\(de_DE.UTF-8 UTF-8\)/\1/' /etc/locale.gen
  grep -q '^de_DE.UTF-8 UTF-8' /etc/locale.gen || echo 'de_DE.UTF-8 UTF-8' | $sudo tee -a /etc/locale.gen >/dev/null
  $sudo locale-gen >&2
fi

# The version matrix's server builds (16, 17, 18, and 14 for the refusal test) go into
# .cache/pg in the checkout: with --matrix [MAJOR...], or for the version WALWEAVE_PG names.
# 17 and 18 also get their own version's oracles (pg_verifybackup, pg_waldump,
# pg_combinebackup), built once per machine from Debian's source packages; 18's first, which
# adds the deb-src index that 17's tries before its pinned files.
oracles() {
  for m in 18 17; do
    [[ " $* " == *" $m "* ]] || continue
    case $m in
      18) "$(dirname "$0")/setup-pg18-src.sh" ;;
      17) "$(dirname "$0")/setup-pg17-tools.sh" ;;
    esac
  done
}
if [ "${1:-}" = --matrix ]; then
  shift
  "$(dirname "$0")/setup-pg-matrix.sh" "$@"
  if [ $# -gt 0 ]; then oracles "$@"; else oracles 17 18; fi
elif [[ "${WALWEAVE_PG:-}" =~ ^[0-9]+$ ]] && [ "$WALWEAVE_PG" != 15 ]; then
  "$(dirname "$0")/setup-pg-matrix.sh" "$WALWEAVE_PG"
  oracles "$WALWEAVE_PG"
fi
