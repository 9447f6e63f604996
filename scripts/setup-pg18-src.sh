#!/usr/bin/env bash
# Builds PostgreSQL 18 from Debian's source package into /usr/lib/postgresql/18 (outside the
# checkout, once per machine): the full set of client programs the tests use as oracles
# (pg_verifybackup reading manifest v2 and 16-18's WAL, pg_combinebackup, pg_receivewal,
# pg_waldump, pg_amcheck, pgbench, psql) and a server built with lz4 and zstd. Idempotent: a
# tree carrying this script's stamp is left alone. About 5 minutes on 2 cores.
#
# The source comes from the distribution's deb-src index of the first suite that carries
# postgresql-18 (trixie, else forky); the mirror is the one the machine's own apt sources
# already use. Usage: scripts/setup-pg18-src.sh   (PG18_PREFIX overrides the install prefix)
set -euo pipefail

prefix=${PG18_PREFIX:-/usr/lib/postgresql/18}
stamp="$prefix/.walweave-src-build"
want="postgresql-18 from source: --with-lz4 --with-zstd --with-openssl --without-icu"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$prefix/bin/pg_combinebackup" ]; then
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

# The mirror the machine already uses (deb822 or one-line format).
uri=$("$(dirname "$0")/debian-mirror.sh") ||
  { echo "setup-pg18-src: add a deb-src line for a suite that has postgresql-18" >&2; exit 1; }

list=/etc/apt/sources.list.d/walweave-pg18-src.sources
if [ ! -f "$list" ]; then
  echo "setup-pg18-src: adding deb-src (trixie, forky) from $uri" >&2
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie forky\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
    $sudo tee "$list" >/dev/null
  $sudo apt-get update -qq
fi

echo "setup-pg18-src: installing the build dependencies" >&2
$sudo apt-get install -y -qq --no-install-recommends build-essential bison flex perl pkg-config \
  libreadline-dev zlib1g-dev libssl-dev liblz4-dev libzstd-dev dpkg-dev >&2

work=$(mktemp -d /tmp/walweave-pg18-src.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "setup-pg18-src: fetching the source package" >&2
apt-get source -qq --download-only postgresql-18 >&2
dsc=$(ls postgresql-18_*.dsc | head -1)
dpkg-source -x --skip-patches "$dsc" src >&2
cd src
echo "setup-pg18-src: configure and make world-bin into $prefix" >&2
./configure --prefix="$prefix" --with-lz4 --with-zstd --without-icu --with-openssl >configure.log 2>&1 ||
  { tail -30 configure.log >&2; exit 1; }
make -s -j"$(nproc)" world-bin >make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
$sudo make -s install-world-bin >install.log 2>&1 || { tail -40 install.log >&2; exit 1; }
echo "$want" | $sudo tee "$stamp" >/dev/null
# The servers the tests start run as the postgres OS user.
$sudo chmod -R a+rX "$prefix"
echo "setup-pg18-src: PostgreSQL $("$prefix/bin/postgres" --version | awk '{print $3}') in $prefix" >&2
