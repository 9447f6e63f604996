// Package walarchive keeps the WAL between backups: a continuous archiver that streams WAL
// through a permanent physical replication slot into a [Sink] (a directory, a command, or an
// agent's object store), and the functions that use such an archive: [Get] (restore_command's
// helper), [Verify] and [Prune].
//
// The [Archiver] reuses walweave's WAL receiver (package walstream) in its archive mode: the
// flush position it reports, which a physical slot's restart_lsn follows, is only ever what the
// sink stored durably, so a crash of the archiver, its host or the sink loses nothing: the
// server keeps the rest. It starts after the newest complete segment of the archive (a [Lister]
// sink), else at the slot's restart_lsn, reconnects with backoff after a lost connection or a
// server restart, follows timeline switches (storing the new timeline's history file; the old
// timeline's last segment stays partial), and retries a failing sink for Config.RetryFor.
//
// Archive layout (the names are the interface, shared with pg_receivewal and archive_command
// archives): a complete segment is <24 hex digits>, or with .zst or .lz4 when compressed; a
// timeline history file <8 hex digits>.history; the segment in progress <name>.partial (a
// [PartialSink] such as [DirSink] keeps it; with Config.Synchronous it is made durable before
// each flush report, so that the archiver can be a synchronous standby).
//
// Logging goes only to Config.Logger.
package walarchive
