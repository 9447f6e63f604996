#!/usr/bin/env bash
# Builds the PostgreSQL 17 client programs the tests use as oracles for 17's backups
# (pg_verifybackup, the pg_waldump it runs for the WAL check, pg_combinebackup) from Debian's
# postgresql-17 source package, into /usr/lib/postgresql/17/bin (outside the checkout, once
# per machine). These programs read their own major version's files only (WAL page magic,
# pg_control, manifest version 2), and no PostgreSQL 17 client package installs on this
# Debian: the matrix's 17 server (scripts/setup-pg-matrix.sh) has none.
#
# No server is installed there (no postgres, initdb or pg_ctl), so internal/pgtest takes that
# directory for 17's client programs only and still runs the matrix's 17 server.
#
# The source: `apt-get source postgresql-17` from the machine's deb-src index (trixie's, which
# scripts/setup-pg18-src.sh adds) when it can fetch it; the index may name a version whose files
# the mirror no longer serves (404), so otherwise the pinned 17.11 files below, from the pool
# of the mirror the machine's apt sources already use (scripts/debian-mirror.sh), checked
# against their sha256 before anything is unpacked.
#
# Idempotent: a prefix carrying this script's stamp and the programs is left alone. 1 to 2
# minutes on 2 cores (68 s and 102 s measured; configure is most of it).
# Usage: scripts/setup-pg17-tools.sh   (PG17_TOOLS_PREFIX overrides the install prefix)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prefix=${PG17_TOOLS_PREFIX:-/usr/lib/postgresql/17}
programs=(pg_verifybackup pg_waldump pg_combinebackup)
stamp="$prefix/.walweave-tools-build"
want="postgresql-17 client programs from source (${programs[*]}): --with-lz4 --with-zstd --with-openssl --without-icu"
done_already=1
for p in "${programs[@]}"; do [ -x "$prefix/bin/$p" ] || done_already=0; done
if [ $done_already -eq 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ -e "$prefix/bin/postgres" ]; then
  echo "setup-pg17-tools: $prefix/bin/postgres exists (another PostgreSQL 17 installation); not building into it" >&2
  exit 1
fi

# The fallback: Debian's 17.11 source package (trixie, 17.11-0+deb13u1), pinned by sha256.
pool=pool/main/p/postgresql-17
declare -A pinned=(
  [postgresql-17_17.11-0+deb13u1.dsc]=bf148ae423a982707c3f60672c3a072ef62b701bd9f5df847d9f4b8c9b3e3b18
  [postgresql-17_17.11.orig.tar.bz2]=dd27f2b3c59e73ed14aa3324901242bf69a032a6347805f274e6260322d42979
  [postgresql-17_17.11-0+deb13u1.debian.tar.xz]=82851f4dfeb372c99b94b412e2e3046a8eee7771098e42ac1fa234bef2611cbd
)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

need=()
for pkg in build-essential bison flex perl pkg-config libreadline-dev zlib1g-dev libssl-dev \
  liblz4-dev libzstd-dev dpkg-dev curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-pg17-tools: installing the build dependencies: ${need[*]}" >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

work=$(mktemp -d /tmp/walweave-pg17-tools.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "setup-pg17-tools: fetching the source package" >&2
if apt-get source -qq --download-only postgresql-17 >apt-source.log 2>&1 && ls postgresql-17_*.dsc >/dev/null 2>&1; then
  dsc=$(ls postgresql-17_*.dsc | head -1)
else
  echo "setup-pg17-tools: apt-get source postgresql-17 failed ($(grep -m1 '^E:' apt-source.log || tail -1 apt-source.log)); using the pinned 17.11 files" >&2
  rm -f postgresql-17_*
  mirror=$("$here/debian-mirror.sh")
  for f in "${!pinned[@]}"; do
    curl -fsSL --retry 3 -o "$f" "$mirror/$pool/${f//+/%2b}"
    got=$(sha256sum "$f" | cut -d' ' -f1)
    if [ "$got" != "${pinned[$f]}" ]; then
      echo "setup-pg17-tools: $f: sha256 $got, pinned ${pinned[$f]}; refusing to unpack" >&2
      exit 1
    fi
  done
  dsc=postgresql-17_17.11-0+deb13u1.dsc
fi
dpkg-source -x --skip-patches "$dsc" src >dpkg-source.log 2>&1 || { cat dpkg-source.log >&2; exit 1; }
cd src
echo "setup-pg17-tools: configure, then make ${programs[*]} into $prefix/bin" >&2
./configure --prefix="$prefix" --with-lz4 --with-zstd --without-icu --with-openssl >configure.log 2>&1 ||
  { tail -30 configure.log >&2; exit 1; }
for p in "${programs[@]}"; do
  make -s -j"$(nproc)" -C "src/bin/$p" >>make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
done
for p in "${programs[@]}"; do
  $sudo make -s -C "src/bin/$p" install >>install.log 2>&1 || { tail -40 install.log >&2; exit 1; }
done
# pg_verifybackup finds pg_waldump beside itself and checks that it is of the same version.
"$prefix/bin/pg_verifybackup" --version >/dev/null
echo "$want" | $sudo tee "$stamp" >/dev/null
# The tests run these programs as the postgres OS user.
$sudo chmod -R a+rX "$prefix"
echo "setup-pg17-tools: $("$prefix/bin/pg_verifybackup" --version) and the others in $prefix/bin" >&2
