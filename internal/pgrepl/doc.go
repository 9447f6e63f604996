// Package pgrepl holds the small pieces of PostgreSQL's physical replication protocol that
// walweave needs, on top of pgx's pgconn and pgproto3: LSNs and WAL file names, the
// replication commands (IDENTIFY_SYSTEM, SHOW, CREATE_REPLICATION_SLOT ... TEMPORARY PHYSICAL,
// READ_REPLICATION_SLOT, START_REPLICATION ... PHYSICAL, TIMELINE_HISTORY) and the CopyData
// messages of a physical stream (XLogData 'w', primary keepalive 'k', standby status update
// 'r').
//
// For the base backup's copy stream it also has MessageReader, which reads backend messages
// through one large buffer without a copy or an allocation per message, and SetRecvLowWater,
// which makes the kernel wake a reader only once a batch of bytes is queued.
//
// Each function does one thing; the WAL receiver in package walstream puts them together.
// Connections come from ParseConfig, which makes a physical replication connection whose
// context handling only sets socket deadlines (a walsender must not get cancel requests).
package pgrepl
