#!/usr/bin/env bash
# walweave's main job, end to end, on a scratch cluster:
#   start PostgreSQL in a temp dir, load pgbench data, run a write load, take a backup with
#   the walweave CLI into a file while the load runs, extract it with tar, run
#   pg_verifybackup, start PostgreSQL on the copy, check pgbench's invariant, print a
#   summary, clean up. Usage: scripts/demo.sh [SCALE]   (default 20, about 300 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-${SCALE:-20}}

./scripts/setup.sh
bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  [ -x "$d/postgres" ] && { bindir=$d; break; }
done
[ -n "$bindir" ] || { echo "demo: no PostgreSQL server binaries found" >&2; exit 1; }

work=$(mktemp -d /tmp/walweave-demo.XXXXXX)
chmod 755 "$work"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/postgresql postgres
  chown postgres: "$work"
  as_pg=(runuser -u postgres --)
fi
pg() { "${as_pg[@]}" env LC_ALL=C "$@"; }
src="$work/src" copy="$work/copy" sock="$work/sock"
pg mkdir -m 700 "$sock"
port=$((20000 + RANDOM % 20000)) port2=$((port + 1))
cleanup() {
  [ -n "${load_pid:-}" ] && kill "$load_pid" 2>/dev/null || true
  pg "$bindir/pg_ctl" -D "$copy" -m immediate stop >/dev/null 2>&1 || true
  pg "$bindir/pg_ctl" -D "$src" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building walweave"
go build -o "$work/walweave" ./cmd/walweave

echo "== starting a scratch PostgreSQL ($("$bindir/postgres" --version)) on port $port"
pg "$bindir/initdb" -D "$src" -U postgres --auth=trust --data-checksums --no-sync >/dev/null
cat <<CONF | pg tee -a "$src/postgresql.conf" >/dev/null
port = $port
listen_addresses = ''
unix_socket_directories = '$sock'
wal_level = replica
max_wal_senders = 10
shared_buffers = 128MB
CONF
pg "$bindir/pg_ctl" -D "$src" -l "$work/src.log" -w start >/dev/null

echo "== loading pgbench data (scale $scale)"
pg "$bindir/pgbench" -h "$sock" -p "$port" -U postgres -i -q -s "$scale" postgres 2>&1 | tail -1
pg "$bindir/pgbench" -h "$sock" -p "$port" -U postgres -n -c 4 -T 600 postgres >/dev/null 2>&1 &
load_pid=$!
sleep 2

echo "== backing up with walweave while pgbench writes"
start=$(date +%s.%N)
pg "$work/walweave" backup -d "host=$sock port=$port user=postgres" -c fast -o "$work/base.tar" -P
end=$(date +%s.%N)
kill "$load_pid"; wait "$load_pid" 2>/dev/null || true; load_pid=""

echo "== restoring with tar and checking"
pg mkdir -m 700 "$copy"
pg tar -xf "$work/base.tar" -C "$copy"
pg "$bindir/pg_verifybackup" "$copy"
cat <<CONF | pg tee -a "$copy/postgresql.conf" >/dev/null
port = $port2
CONF
pg "$bindir/pg_ctl" -D "$copy" -l "$work/copy.log" -w start >/dev/null
invariant=$(pg "$bindir/psql" -h "$sock" -p "$port2" -U postgres -XAtq -c "
  select a = h and h = t and t = b from
    (select sum(abalance) a from pgbench_accounts) aa, (select coalesce(sum(delta),0) h from pgbench_history) hh,
    (select sum(tbalance) t from pgbench_tellers) tt, (select sum(bbalance) b from pgbench_branches) bb" postgres)
[ "$invariant" = "t" ] || { echo "demo: pgbench invariant does NOT hold on the restored copy" >&2; exit 1; }
txns=$(pg "$bindir/psql" -h "$sock" -p "$port2" -U postgres -XAtq -c "select count(*) from pgbench_history" postgres)

size=$(stat -c %s "$work/base.tar")
wal=$(tar -tf "$work/base.tar" | grep -cE '^pg_wal/[0-9A-F]{24}$')
first_wal=$(tar -tf "$work/base.tar" | grep -nE '^pg_wal/[0-9A-F]{24}$' | head -1 | cut -d: -f1)
last_data=$(tar -tf "$work/base.tar" | grep -nvE '^pg_wal/|^backup_manifest$' | tail -1 | cut -d: -f1)
secs=$(awk "BEGIN{print $end - $start}")
echo
echo "== summary"
printf 'backup size      %d MiB\n' $((size / 1048576))
printf 'backup time      %.1f s\n' "$secs"
printf 'throughput       %.0f MiB/s\n' "$(awk "BEGIN{print $size / 1048576 / $secs}")"
printf 'WAL segments     %d woven in (first at member %s, last data member at %s)\n' "$wal" "$first_wal" "$last_data"
printf 'restored copy    pg_verifybackup OK, started, pgbench invariant holds (%s transactions)\n' "$txns"
