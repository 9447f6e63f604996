#!/usr/bin/env bash
# Prints the Debian mirror the machine's own apt sources use (the first URI that is not a
# security mirror; deb822 .sources files first, then the one-line sources.list), for the
# scripts that fetch Debian source packages (setup-pg18-src.sh, setup-pg17-tools.sh). No host
# name is written anywhere else: the machine's apt configuration is the only source of it.
# Exits 1, saying so, when there is none.
set -euo pipefail

uri=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
  [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
  uri=$(awk '$1 ~ /^deb(-src)?$/ && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
  echo "debian-mirror: no Debian mirror found in /etc/apt/sources.list*" >&2
  exit 1
fi
echo "${uri%/}"
