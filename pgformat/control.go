package pgformat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// pg_control format versions (PG_CONTROL_VERSION): 1300 in PostgreSQL 13 to 16, 1700 in 17
// (CheckPoint gained wal_level, in what was padding), 1800 in 18 (default_char_signedness).
const (
	ControlVersion13 = 1300
	ControlVersion17 = 1700
	ControlVersion18 = 1800
)

// ControlFileSize is the size of global/pg_control on disk (PG_CONTROL_FILE_SIZE): the
// struct, zero-padded.
const ControlFileSize = 8192

// DBState is pg_control's cluster state.
type DBState uint32

// The cluster states.
const (
	DBStartup DBState = iota
	DBShutdowned
	DBShutdownedInRecovery
	DBShutdowning
	DBInCrashRecovery
	DBInArchiveRecovery
	DBInProduction
)

func (s DBState) String() string {
	switch s {
	case DBStartup:
		return "starting up"
	case DBShutdowned:
		return "shut down"
	case DBShutdownedInRecovery:
		return "shut down in recovery"
	case DBShutdowning:
		return "shutting down"
	case DBInCrashRecovery:
		return "in crash recovery"
	case DBInArchiveRecovery:
		return "in archive recovery"
	case DBInProduction:
		return "in production"
	}
	return fmt.Sprintf("unrecognized status code %d", uint32(s))
}

// ControlFile is what walweave reads from global/pg_control (ControlFileData).
type ControlFile struct {
	SystemIdentifier uint64
	PgControlVersion uint32
	CatalogVersion   uint32
	State            DBState
	// Time is the last update of pg_control (Unix seconds).
	Time int64
	// CheckpointLSN is the last checkpoint record; Redo and Timeline are from its copy.
	CheckpointLSN LSN
	Redo          LSN
	Timeline      uint32
	PrevTimeline  uint32
	// MinRecoveryPoint and MinRecoveryPointTLI: replay must reach this point.
	MinRecoveryPoint    LSN
	MinRecoveryPointTLI uint32
	BackupStartPoint    LSN
	BackupEndPoint      LSN
	BackupEndRequired   bool
	WALLevel            int32
	// BlockSize is BLCKSZ; RelsegSize is RELSEG_SIZE (blocks per relation segment).
	BlockSize  uint32
	RelsegSize uint32
	// WALBlockSize is XLOG_BLCKSZ; WALSegSize is wal_segment_size.
	WALBlockSize uint32
	WALSegSize   uint32
	MaxAlign     uint32
	// DataChecksumVersion is 0 without data checksums.
	DataChecksumVersion uint32
	// DefaultCharSigned is default_char_signedness (18+; false before).
	DefaultCharSigned bool
	// CRC is the stored CRC-32C (checked by ParseControlFile).
	CRC uint32
}

// Offsets of ControlFileData's fields (x86-64 and other LP64 little-endian platforms),
// the same in every layout up to data_checksum_version; only the CRC moves.
const (
	ctlSystemID          = 0
	ctlVersion           = 8
	ctlCatalog           = 12
	ctlState             = 16
	ctlTime              = 24
	ctlCheckpoint        = 32
	ctlCkptCopy          = 40 // CheckPoint, 88 bytes: redo, ThisTimeLineID, PrevTimeLineID, ...
	ctlMinRecovery       = 136
	ctlMinRecoveryTLI    = 144
	ctlBackupStart       = 152
	ctlBackupEnd         = 160
	ctlBackupEndRequired = 168
	ctlWALLevel          = 172
	ctlMaxAlign          = 204
	ctlFloatFormat       = 208
	ctlBlcksz            = 216
	ctlRelseg            = 220
	ctlXLogBlcksz        = 224
	ctlXLogSegSize       = 228
	ctlDataChecksum      = 252
	ctlCharSigned18      = 256
	ctlCRC13             = 288 // after the 32-byte mock authentication nonce at 256
	ctlCRC18             = 292 // default_char_signedness at 256, nonce at 257
)

// ErrControlCRC is wrapped by ParseControlFile's error when the CRC does not match.
var ErrControlCRC = errors.New("pg_control CRC mismatch")

// ParseControlFile parses the content of global/pg_control written by PostgreSQL 13 to 18,
// picking the layout by pg_control_version, and checks its CRC-32C. Only the little-endian
// 64-bit layout is known (the floatFormat field tells a foreign layout apart).
func ParseControlFile(b []byte) (ControlFile, error) {
	var c ControlFile
	if len(b) < ctlCRC18+4 {
		return c, fmt.Errorf("pg_control is %d bytes, too short", len(b))
	}
	le := binary.LittleEndian
	c.PgControlVersion = le.Uint32(b[ctlVersion:])
	crcAt := 0
	switch c.PgControlVersion {
	case ControlVersion13, ControlVersion17:
		crcAt = ctlCRC13
	case ControlVersion18:
		crcAt = ctlCRC18
	default:
		if be := binary.BigEndian.Uint32(b[ctlVersion:]); be >= 1300 && be < 10000 {
			return c, fmt.Errorf("pg_control is big-endian (version %d): not supported", be)
		}
		return c, fmt.Errorf("unsupported pg_control version %d (known: 1300 for PostgreSQL 13-16, 1700 for 17, 1800 for 18)", c.PgControlVersion)
	}
	c.CRC = le.Uint32(b[crcAt:])
	if got := crc32.Checksum(b[:crcAt], Castagnoli); got != c.CRC {
		return c, fmt.Errorf("%w: stored 0x%08x, computed 0x%08x", ErrControlCRC, c.CRC, got)
	}
	if f := math.Float64frombits(le.Uint64(b[ctlFloatFormat:])); f != 1234567.0 {
		return c, fmt.Errorf("pg_control has an unexpected layout (floatFormat %v)", f)
	}
	c.SystemIdentifier = le.Uint64(b[ctlSystemID:])
	c.CatalogVersion = le.Uint32(b[ctlCatalog:])
	c.State = DBState(le.Uint32(b[ctlState:]))
	c.Time = int64(le.Uint64(b[ctlTime:]))
	c.CheckpointLSN = LSN(le.Uint64(b[ctlCheckpoint:]))
	c.Redo = LSN(le.Uint64(b[ctlCkptCopy:]))
	c.Timeline = le.Uint32(b[ctlCkptCopy+8:])
	c.PrevTimeline = le.Uint32(b[ctlCkptCopy+12:])
	c.MinRecoveryPoint = LSN(le.Uint64(b[ctlMinRecovery:]))
	c.MinRecoveryPointTLI = le.Uint32(b[ctlMinRecoveryTLI:])
	c.BackupStartPoint = LSN(le.Uint64(b[ctlBackupStart:]))
	c.BackupEndPoint = LSN(le.Uint64(b[ctlBackupEnd:]))
	c.BackupEndRequired = b[ctlBackupEndRequired] != 0
	c.WALLevel = int32(le.Uint32(b[ctlWALLevel:]))
	c.MaxAlign = le.Uint32(b[ctlMaxAlign:])
	c.BlockSize = le.Uint32(b[ctlBlcksz:])
	c.RelsegSize = le.Uint32(b[ctlRelseg:])
	c.WALBlockSize = le.Uint32(b[ctlXLogBlcksz:])
	c.WALSegSize = le.Uint32(b[ctlXLogSegSize:])
	c.DataChecksumVersion = le.Uint32(b[ctlDataChecksum:])
	if c.PgControlVersion >= ControlVersion18 {
		c.DefaultCharSigned = b[ctlCharSigned18] != 0
	}
	return c, nil
}
