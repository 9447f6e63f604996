// Package walstream is walweave's WAL receiver: it owns the second replication connection of a
// backup (connection B), streams the WAL the backup needs with START_REPLICATION ... PHYSICAL,
// assembles it into complete WAL segments and hands them to a [ringbuf.Ring].
//
// A [Receiver] goes through these states:
//
//	Connect ──> connected ──PrepareSlot──> slot ready ──Stream──> streaming ◄──────────┐
//	            (IDENTIFY_SYSTEM,          (temporary             │  ▲    │             │
//	             SHOW wal_segment_size,     slot, or the          │  │    │ timeline    │
//	             SHOW wal_sender_timeout,   permanent one         │  │    │ ended (the  │
//	             version 15+)               checked)              │  │    │ server's    │
//	                                                     ring full│  │room│ CopyDone +  │
//	                                                              ▼  │    │ next_tli)   │
//	                                                           [blocked]  ▼             │
//	                                                  (status    pad the old timeline's  │
//	                                                  updates    partial segment, push   │
//	                                                  keep the   TIMELINE_HISTORY, start │
//	                                                  walsender  again on the new one ───┘
//	                                                  alive)
//	streaming ──SetEnd and received ≥ end──> ending ──> done
//	            (push the segment holding the end LSN zero-padded, final status update,
//	             CopyDone, drain to ReadyForQuery, ring.Close(nil))
//
// Any error (connection lost, walsender terminated, WAL already removed, context cancelled)
// ends the stream: the connection is closed (a temporary slot goes with it) and the ring is
// closed with the error.
//
// While streaming the receiver answers keepalives that ask for a reply at once and sends a
// standby status update (write = received position, flush = end of the last segment handed to
// the ring, apply = 0) every Config.StatusInterval, which is capped at a third of the server's
// wal_sender_timeout. It keeps sending them while [ringbuf.Ring.Push] waits for room, because a
// walsender that hears nothing from its client for wal_sender_timeout ends the connection.
//
// A walsender that gets regular status updates sends nothing while it has no WAL to send, so
// after a status interval without news the updates ask the server for a reply; a server not
// heard from for Config.ProgressTimeout (DefaultProgressTimeout unless set) ends the stream
// with an error instead of a hang. Between PrepareSlot and Stream, while the other connection's
// BASE_BACKUP waits for the start checkpoint, [Receiver.Watch] reads the idle connection (a
// terminated walsender is reported at once) and probes it with IDENTIFY_SYSTEM. A kernel
// ETIMEDOUT (TCP keepalive, TCP_USER_TIMEOUT on the connection) is reported as a timed-out
// connection, never taken for a read deadline of the receiver's own.
// Reads wait at most until the next status update is due: the connection uses pgconn's
// deadline-only context handler, so an expired read deadline leaves it usable and a partly read
// message is resumed. WAL past the end position is not kept.
//
// The steady-state path (one XLogData message copied into the current segment buffer) does not
// allocate. Logging goes only to Config.Logger.
package walstream
