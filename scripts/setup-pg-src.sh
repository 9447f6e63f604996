#!/usr/bin/env bash
# Builds PostgreSQL MAJOR from Debian's source package into /usr/lib/postgresql/MAJOR (outside
# the checkout, once per machine), for the tests' oracles: pg_verifybackup, pg_waldump and
# pg_combinebackup read only their own major version's WAL, pg_control and backups, so each
# server version the suite checks needs its own.
#
#   18: the full build (make world-bin): every client program (pg_verifybackup, pg_combinebackup,
#       pg_receivewal, pg_waldump, pg_amcheck, pgbench, psql, pg_basebackup) and a server built
#       with lz4 and zstd. About 3.5 minutes on 2 cores.
#   17 (or any other): the version-bound client programs only (pg_verifybackup, pg_waldump,
#       pg_combinebackup); the other client programs come from 18, which reads older servers.
#       About 2 minutes on 2 cores.
#
# Idempotent: a tree carrying this script's stamp is left alone. The source comes from the
# distribution's deb-src index of the first suite that carries postgresql-MAJOR (trixie, else
# forky: 17 and 18 are there, 16 is in none); the mirror is the one the machine's own apt
# sources already use. Usage: scripts/setup-pg-src.sh MAJOR   (PG_SRC_PREFIX overrides the
# install prefix)
set -euo pipefail

major=${1:?usage: scripts/setup-pg-src.sh MAJOR}
prefix=${PG_SRC_PREFIX:-/usr/lib/postgresql/$major}
stamp="$prefix/.walweave-src-build"
clients="pg_verifybackup pg_waldump pg_combinebackup"
if [ "$major" = 18 ]; then
  want="postgresql-18 from source: --with-lz4 --with-zstd --with-openssl --without-icu"
else
  want="postgresql-$major client programs from source: $clients"
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$prefix/bin/pg_combinebackup" ]; then
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

# The mirror the machine already uses (deb822 or one-line format).
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
  [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
  uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
  echo "setup-pg-src: no Debian mirror found in /etc/apt/sources.list*; add a deb-src line for a suite that has postgresql-18" >&2
  exit 1
fi

list=/etc/apt/sources.list.d/walweave-pg18-src.sources
if [ ! -f "$list" ]; then
  echo "setup-pg-src: adding deb-src (trixie, forky) from $uri" >&2
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie forky\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
    $sudo tee "$list" >/dev/null
  $sudo apt-get update -qq
fi

echo "setup-pg-src: installing the build dependencies" >&2
$sudo apt-get install -y -qq --no-install-recommends build-essential bison flex perl pkg-config \
  libreadline-dev zlib1g-dev libssl-dev liblz4-dev libzstd-dev dpkg-dev >&2

work=$(mktemp -d "/tmp/walweave-pg$major-src.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "setup-pg-src: fetching the source package" >&2
apt-get source -qq --download-only "postgresql-$major" >&2
dsc=$(ls "postgresql-${major}"_*.dsc | head -1)
dpkg-source -x --skip-patches "$dsc" src >&2
cd src
./configure --prefix="$prefix" --with-lz4 --with-zstd --without-icu --with-openssl >configure.log 2>&1 ||
  { tail -30 configure.log >&2; exit 1; }
if [ "$major" = 18 ]; then
  echo "setup-pg-src: make world-bin into $prefix" >&2
  make -s -j"$(nproc)" world-bin >make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
  $sudo make -s install-world-bin >install.log 2>&1 || { tail -40 install.log >&2; exit 1; }
else
  echo "setup-pg-src: make $clients into $prefix" >&2
  for p in $clients; do
    make -s -j"$(nproc)" -C "src/bin/$p" >>make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
  done
  # The programs link libpq dynamically: install it beside them (lib/), as a full install does.
  for d in $clients; do
    $sudo make -s -C "src/bin/$d" install >>install.log 2>&1 || { tail -40 install.log >&2; exit 1; }
  done
  $sudo make -s -C src/interfaces/libpq install >>install.log 2>&1 || { tail -40 install.log >&2; exit 1; }
fi
echo "$want" | $sudo tee "$stamp" >/dev/null
# The servers the tests start run as the postgres OS user.
$sudo chmod -R a+rX "$prefix"
echo "setup-pg-src: PostgreSQL $major ($("$prefix/bin/pg_verifybackup" --version | awk '{print $3}')) in $prefix" >&2
