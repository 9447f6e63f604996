package pgrepl

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walweave/walweave/pgformat"
)

// Message type bytes inside CopyData during physical streaming.
const (
	XLogDataByte         = 'w' // server -> client: WAL data
	PrimaryKeepaliveByte = 'k' // server -> client: keepalive
	StandbyStatusByte    = 'r' // client -> server: standby status update
)

// Sizes of the fixed parts of the streaming messages, type byte included.
const (
	XLogDataHeaderLen     = 1 + 8 + 8 + 8
	PrimaryKeepaliveLen   = 1 + 8 + 8 + 1
	StandbyStatusLen      = 1 + 8 + 8 + 8 + 8 + 1
	postgresEpochUnixSecs = 946684800 // 2000-01-01 00:00:00 UTC
)

// TimeFromMicros converts a protocol timestamp (microseconds since 2000-01-01 UTC) to a time.
func TimeFromMicros(us int64) time.Time {
	return time.UnixMicro(us + postgresEpochUnixSecs*1_000_000)
}

// MicrosFromTime converts t to a protocol timestamp (microseconds since 2000-01-01 UTC).
func MicrosFromTime(t time.Time) int64 {
	return t.UnixMicro() - postgresEpochUnixSecs*1_000_000
}

// XLogData is a 'w' message: a chunk of WAL starting at WALStart.
type XLogData struct {
	WALStart     pgformat.LSN // LSN of the first byte of Data
	ServerWALEnd pgformat.LSN // the server's current end of WAL
	ServerTime   time.Time    // the server's clock when it sent the message
	Data         []byte       // the WAL bytes; aliases the input of ParseXLogData
}

// ParseXLogData parses a CopyData payload holding an XLogData message ('w', walStart, walEnd,
// sendTime, data). Data aliases b.
func ParseXLogData(b []byte) (XLogData, error) {
	if len(b) < XLogDataHeaderLen || b[0] != XLogDataByte {
		return XLogData{}, errBadMessage("XLogData", XLogDataByte, b, XLogDataHeaderLen)
	}
	x, err := pglogrepl.ParseXLogData(b[1:])
	if err != nil {
		return XLogData{}, fmt.Errorf("pgrepl: malformed XLogData message: %w", err)
	}
	return XLogData{WALStart: pgformat.LSN(x.WALStart), ServerWALEnd: pgformat.LSN(x.ServerWALEnd), ServerTime: x.ServerTime, Data: x.WALData}, nil
}

// PrimaryKeepalive is a 'k' message.
type PrimaryKeepalive struct {
	ServerWALEnd   pgformat.LSN // the server's current end of WAL
	ServerTime     time.Time    // the server's clock when it sent the message
	ReplyRequested bool         // the server asks for a status update at once
}

// ParsePrimaryKeepalive parses a CopyData payload holding a primary keepalive message ('k',
// walEnd, sendTime, replyRequested).
func ParsePrimaryKeepalive(b []byte) (PrimaryKeepalive, error) {
	if len(b) != PrimaryKeepaliveLen || b[0] != PrimaryKeepaliveByte {
		return PrimaryKeepalive{}, errBadMessage("primary keepalive", PrimaryKeepaliveByte, b, PrimaryKeepaliveLen)
	}
	k, err := pglogrepl.ParsePrimaryKeepaliveMessage(b[1:])
	if err != nil {
		return PrimaryKeepalive{}, fmt.Errorf("pgrepl: malformed primary keepalive message: %w", err)
	}
	return PrimaryKeepalive{ServerWALEnd: pgformat.LSN(k.ServerWALEnd), ServerTime: k.ServerTime, ReplyRequested: k.ReplyRequested}, nil
}

func errBadMessage(what string, typ byte, b []byte, want int) error {
	if len(b) == 0 {
		return fmt.Errorf("pgrepl: malformed %s message: empty", what)
	}
	if b[0] != typ {
		return fmt.Errorf("pgrepl: malformed %s message: type byte %q, want %q", what, b[0], typ)
	}
	return fmt.Errorf("pgrepl: malformed %s message: %d bytes, want %d", what, len(b), want)
}

// AppendStandbyStatus appends a standby status update ('r') payload to dst: the write, flush
// and apply positions, the client's clock now (microseconds since 2000-01-01 UTC) and whether
// the client asks the server for an immediate reply.
func AppendStandbyStatus(dst []byte, write, flush, apply pgformat.LSN, now time.Time, replyRequested bool) []byte {
	dst = append(dst, StandbyStatusByte)
	dst = binary.BigEndian.AppendUint64(dst, uint64(write))
	dst = binary.BigEndian.AppendUint64(dst, uint64(flush))
	dst = binary.BigEndian.AppendUint64(dst, uint64(apply))
	dst = binary.BigEndian.AppendUint64(dst, uint64(MicrosFromTime(now)))
	var r byte
	if replyRequested {
		r = 1
	}
	return append(dst, r)
}

var copyDataPool = sync.Pool{New: func() any { return new(pgproto3.CopyData) }}

// SendStandbyStatus sends buf (a payload made by AppendStandbyStatus) to the server in a
// CopyData message and flushes it. It must run on the goroutine that uses conn and does not
// allocate in steady state.
func SendStandbyStatus(conn *pgconn.PgConn, buf []byte) error {
	return SendCopyData(conn, buf)
}

// SendCopyData sends payload in a CopyData message and flushes it.
func SendCopyData(conn *pgconn.PgConn, payload []byte) error {
	cd := copyDataPool.Get().(*pgproto3.CopyData)
	cd.Data = payload
	fe := conn.Frontend()
	fe.Send(cd)
	cd.Data = nil
	copyDataPool.Put(cd)
	if err := fe.Flush(); err != nil {
		return fmt.Errorf("pgrepl: send to the server: %w", err)
	}
	return nil
}

// SendCopyDone sends CopyDone (the client ends the COPY of START_REPLICATION) and flushes it.
func SendCopyDone(conn *pgconn.PgConn) error {
	fe := conn.Frontend()
	fe.Send(&pgproto3.CopyDone{})
	if err := fe.Flush(); err != nil {
		return fmt.Errorf("pgrepl: send CopyDone: %w", err)
	}
	return nil
}
