// Package mux is walweave's orchestrator and public entry point: Backup takes a physical
// backup of a PostgreSQL 15+ server and writes it to an io.Writer as one tar stream, with
// the WAL it needs streamed at the same time and woven in between the data files.
//
// Two replication connections run at once:
//
//	connection A: BASE_BACKUP ──> Source (tar archives) ──┐
//	                                                      v
//	connection B: START_REPLICATION ──> walstream ──> ringbuf ──> Backup ──> tarw.Writer ──> w
//
// The order that keeps the WAL safe: connect both, check the server version (15+) and that
// both reach the same system; create the temporary slot (RESERVE_WAL) on B before
// BASE_BACKUP is sent on A; stream from the segment start of the backup's start LSN; pass
// the data through and, at every member boundary, write every complete segment the ring
// holds; after the data, tell the receiver the end LSN and keep draining until the segment
// holding it is written; then the history files, backup_manifest, and the tar trailer.
//
// The stream format is DESIGN.md's contract v1: extract it with `tar -xf` into an empty
// directory and PostgreSQL starts on it and reaches consistency with no archive;
// pg_verifybackup accepts it. Tablespaces are re-rooted under pg_tblspc/<oid>/ as in-place
// tablespaces, with allow_in_place_tablespaces = on and one comment line per tablespace
// recording its original location appended to postgresql.auto.conf.
//
// Both connections get TCP keepalives and a TCP user timeout on both ends (Config.KeepaliveIdle
// ... TCPUserTimeout), so that a cut network ends them, and the server's walsenders and slot,
// within about 50 s; a server that stops sending on a live connection fails its side after
// Config.ProgressTimeout. During the start checkpoint the idle WAL connection is watched, and a
// BASE_BACKUP abandoned while it waits for the checkpoint gets a cancel request.
//
// Connection A is read through a 1 MiB buffer, with a socket low-water mark during the copy
// stream so that the kernel wakes the reader once per MiB rather than per 8 KiB segment (see
// bench/README.md for what that saves). With Config.ServerCompression the server sends each
// archive as an LZ4 frame, decoded on the fly (internal/lz4frame): the stream is the same.
//
// Backup logs nothing unless Config.Logger is set and never writes to a terminal.
package mux
