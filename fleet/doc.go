// Package fleet backs up several PostgreSQL servers at once, one walweave stream per server
// (a mux.Session each), with one restore point across them, and restores them in parallel.
//
// An application sharded over several servers (or a Citus cluster) needs backups that fit
// together: restoring every server must land on one point where no distributed transaction
// is half applied. [Backup] in consistent mode (the default) does this:
//
//  1. Every node's backup starts at once (both replication connections, the slot, the start
//     checkpoint) and copies its data files with its WAL woven in.
//  2. Barrier: once every node's data is done (its end LSN known), the fence is taken: an
//     advisory lock held exclusively on one node (applications take the same key in shared
//     mode, pg_advisory_xact_lock_shared, around their distributed commit decision), or
//     Citus's citus_create_restore_point on the coordinator, which blocks commit decisions
//     itself. No commit decision is in flight while it is held.
//  3. pg_create_restore_point(name) runs on every node at once (over connections opened
//     before the fence, so the fence is held for one round trip); the fence is released.
//  4. The restore point record is not flushed by pg_create_restore_point, and a walsender
//     sends only flushed WAL: on every node a transaction with an xid commits with
//     synchronous_commit = local (its commit flushes the WAL before it, the point included,
//     without waiting for synchronous standbys), and pg_current_wal_flush_lsn() is checked
//     to be past the point. (pg_switch_wal() would flush too, but needs more privilege and
//     ends the WAL segment early.)
//  5. Each stream is extended (mux.Session.ExtendWAL) to its node's restore point LSN (the
//     end of the record) and carries [RecoverySettings] and a recovery.signal after the WAL
//     (mux.Session.AppendRecoveryConf): "tar -x" plus starting PostgreSQL replays the WAL in
//     pg_wal up to the restore point, stops there and promotes. No archive is needed.
//  6. Destinations are committed (files renamed into place) only when every node's stream is
//     complete.
//
// The first failure on any node cancels every other node (its session aborts: no slot,
// walsender or server-side backup is left) and aborts every destination (temporary files
// removed, commands terminated with SIGTERM to their process group), so nothing is left
// that looks like a finished backup. A node backed up again later could not reach the same
// restore point, so a failed consistent fleet backup is rerun as a whole.
//
// After the restore, a transaction that was prepared (PREPARE TRANSACTION) but had no
// commit decision at the restore point is still prepared: with the fence, no transaction
// can be committed on one node and not on another, so such a transaction was not committed
// anywhere and ROLLBACK PREPARED is its resolution (or the application's resolver decides,
// as after a crash).
//
// In independent mode ([Options].Independent) each node is backed up on its own: no barrier,
// fence or restore point, a failure does not cancel the others, and each destination is
// committed when its node is done; [Report.Failed] lists what to run again.
//
// Shared limits: [Options].MemoryBudget is one ringbuf.Budget for every node's WAL ring, so
// the WAL queued while fast nodes wait at the barrier for a slow one is bounded in total
// (each ring still has its slots, and an empty ring always takes one segment: memory stays
// below the budget plus one segment per node). While a node waits at the barrier with its
// ring full, its WAL receiver stops reading but keeps its walsender alive (status updates),
// and the node's server keeps the WAL in pg_wal for the backup's slot until the stream takes
// it: plan pg_wal space for the WAL written during the slowest node's backup.
// [Options].MaxRateTotal splits a total send
// rate evenly over the nodes; mux.Config.MaxRate limits each node.
//
// Requirements: every node is a primary; its role has REPLICATION (two walsenders and a slot
// per node, as for one backup) and may run pg_create_restore_point (a superuser, or GRANT
// EXECUTE ON FUNCTION pg_create_restore_point(text)); Backup checks this before it starts.
// The restore point's name must not be used before in the nodes' WAL since the backup's
// start (recovery stops at the first point of that name); the default name has the time in
// it.
//
// [Restore] extracts every node's stream at once with restore.Extract (each checked while it
// is written); the first failure cancels the others and their directories are cleaned.
package fleet
