#!/usr/bin/env bash
# Runs every package whose tests start a real PostgreSQL (those importing internal/pgtest or
# internal/verifytest, and internal/pgtest itself) once per server version, then the refusal
# tests against PostgreSQL 14 (every data source refuses it) when 14 is in the list.
#
# Usage: scripts/test-matrix.sh [VERSION...]   (default: 15 16 17 18 14)
#        go test -v ... | scripts/test-matrix.sh --filter   (only the console filter below)
# VERSION is what WALWEAVE_PG takes: a major (15 is Debian's, the others come from
# scripts/setup-pg-matrix.sh) or a bin directory. A missing server is a failure
# (WALWEAVE_REQUIRE_PG=1). Full `go test -v` output goes to .cache/test-matrix/<version>.log;
# the console gets, per version: the server each package ran against, every test's PASS/FAIL/
# SKIP line, the message of each failure or skip, and the time taken.
set -uo pipefail
cd "$(dirname "$0")/.."
# Console filter: package results, test results, the first server line of each package, and
# the output of each failed or skipped test (go test -v prints a test's log lines before its
# --- line, and with parallel tests after === CONT/NAME markers).
filter() {
  awk '
    /^=== (RUN|CONT|NAME|PAUSE)/ { n = 0; next }
    /^ *--- (FAIL|SKIP)/ { print; for (i = 0; i < n; i++) if (buf[i] !~ /: PostgreSQL [0-9.]+ \(/) print "    " buf[i]; n = 0; next }
    /^ *--- PASS/ { print; n = 0; next }
    /^(ok|FAIL)/ { print; seen = 0; n = 0; next }
    /^panic:/ { print; panicking = 1; next }
    /^(# |make|[^ ].*\.go:[0-9]+:[0-9]+: )/ { print; next }
    panicking { print; next }
    /: PostgreSQL [0-9]+(\.[0-9]+)? \(/ && !seen { line = $0; sub(/^ +/, "", line); print "server: " line; seen = 1 }
    { sub(/^ +/, ""); buf[n++] = $0 }
  '
}

if [ "${1:-}" = --filter ]; then
  filter
  exit 0
fi


GO=${GO:-go}
TEST_TIMEOUT=${TEST_TIMEOUT:-30m}
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(15 16 17 18 14)

pkgs=$($GO list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... |
  awk '/internal\/pgtest|internal\/verifytest/ {print $1}')
pkgs="github.com/walweave/walweave/internal/pgtest $pkgs"
pkgs=$(echo $pkgs | tr ' ' '\n' | sort -u | tr '\n' ' ')

logdir=.cache/test-matrix
mkdir -p "$logdir"
failed=()
summary=()
start_all=$(date +%s)

for v in "${versions[@]}"; do
  log="$logdir/$(echo "$v" | tr '/' '_').log"
  t0=$(date +%s)
  if [ "$v" = 14 ]; then
    echo "=== PostgreSQL 14: walweave must refuse it (TestRefusesOldServer, TestServerTooOldEverySource)"
    WALWEAVE_PG=14 WALWEAVE_REQUIRE_PG=1 $GO test -count=1 -v -timeout "$TEST_TIMEOUT" \
      -run '^(TestRefusesOldServer|TestServerTooOldEverySource)$' ./cmd/walweave/ ./mux/ >"$log" 2>&1
    rc=$?
    filter <"$log"
    # Both must have run: a skip is a failure here.
    for t in TestRefusesOldServer TestServerTooOldEverySource; do
      if [ $rc -eq 0 ] && ! grep -q "^--- PASS: $t" "$log"; then
        echo "$t did not run against 14" >&2
        rc=1
      fi
    done
  else
    echo "=== WALWEAVE_PG=$v: $pkgs"
    WALWEAVE_PG=$v WALWEAVE_REQUIRE_PG=1 $GO test -race -count=1 -v -timeout "$TEST_TIMEOUT" $pkgs >"$log" 2>&1
    rc=$?
    filter <"$log"
  fi
  t1=$(date +%s)
  skips=$(grep -c -- '--- SKIP' "$log")
  passes=$(grep -c -- '--- PASS' "$log")
  line="PostgreSQL $v: $([ $rc -eq 0 ] && echo ok || echo FAILED), $passes passed, $skips skipped, $((t1 - t0))s (log: $log)"
  echo "$line"
  summary+=("$line")
  [ $rc -eq 0 ] || failed+=("$v")
done

echo "=== matrix summary ($(( $(date +%s) - start_all ))s)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed on: ${failed[*]}" >&2
  exit 1
fi
