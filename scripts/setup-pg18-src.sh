#!/usr/bin/env bash
# PostgreSQL 18 from Debian's source package into /usr/lib/postgresql/18: the full build (every
# client program, and a server with lz4 and zstd). See scripts/setup-pg-src.sh.
exec "$(dirname "$0")/setup-pg-src.sh" 18
