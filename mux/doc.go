// Package mux is walweave's orchestrator and public entry point: Backup takes a physical
// backup of a PostgreSQL 15+ server and writes it to an io.Writer as one tar stream, with
// the WAL it needs streamed at the same time and woven in between the data files.
//
// Two sides run at once:
//
//	data side: source.Source (BASE_BACKUP on connection A) ──┐
//	                                                         v
//	connection B: START_REPLICATION ──> walstream ──> ringbuf ──> weaver ──> tarw.Writer ──> w
//
// The order that keeps the WAL safe: open both connections, check the server version (15+)
// and that both reach the same system; create the temporary slot (RESERVE_WAL) on B before
// the backup starts on A; stream from the segment start of the backup's start LSN; pass the
// data through and, at every member boundary, write every complete segment the ring holds;
// after the data, tell the receiver the end LSN (or a later one, ExtendWAL) and keep draining
// until the segment holding it is written; then the history files, backup_manifest, and the
// tar trailer.
//
// Session exposes those phases (Start, CopyData, ExtendWAL, AppendRecoveryConf, Finish,
// Close) for callers that act between them; Backup runs them in one call. The weaver
// (weave.go) holds the stream contract and knows no protocol; the data side is a
// source.Source (Config.Source, BASE_BACKUP by default from package source/basebackup).
// Every failure is an *Error naming the server, side, phase and step; the sentinel errors
// (ErrAuthentication, ErrNoReplicationRole, ErrTooManyConnections, ...) match it by SQLSTATE,
// read for the kind of connection that failed, whichever data source ran, and Hint says what
// to do about it. A Session may be closed from any goroutine.
//
// The stream format is docs/stream-contract.md in the repository: extract it with `tar -xf`
// into an empty directory and PostgreSQL starts on it and reaches consistency with no archive;
// pg_verifybackup accepts it. Tablespaces are re-rooted under pg_tblspc/<oid>/ as in-place
// tablespaces, with allow_in_place_tablespaces = on and one comment line per tablespace
// recording its original location appended to postgresql.auto.conf.
//
// Connection A is read through a 1 MiB buffer, with a socket low-water mark during the copy
// stream so that the kernel wakes the reader once per MiB rather than per 8 KiB segment (see
// bench/README.md for what that saves). With Config.ServerCompression the server sends each
// archive as an LZ4 or zstd frame, decoded on the fly (internal/lz4frame, klauspost/compress):
// the stream is the same.
//
// With Config.Jobs >= 2 the data side is package source/sqlfetch instead of BASE_BACKUP: a
// non-exclusive backup (pg_backup_start/pg_backup_stop on one session) whose files are read
// with pg_read_binary_file over Jobs ordinary connections, for links that cap each TCP flow.
// The WAL side and the weaving are the same; backup_label then comes after global/pg_control,
// the last data member, and backup_manifest is built by walweave.
//
// Both connections get TCP keepalives and a TCP user timeout on both ends (Config.KeepaliveIdle
// ... TCPUserTimeout), so that a cut network ends them, and the server's walsenders and slot,
// within about 50 s; a server that stops sending on a live connection fails its side after
// Config.ProgressTimeout. During the start checkpoint the idle WAL connection is watched, and a
// BASE_BACKUP abandoned while it waits for the checkpoint gets a cancel request.
//
// Backup logs nothing unless Config.Logger is set. It writes wherever w goes: refusing a
// terminal is the CLI's promise, not the library's.
package mux
