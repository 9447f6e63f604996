package mux

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/source/basebackup"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
	"github.com/walweave/walweave/source"
)

// Checkpoint selects how the server's backup-start checkpoint runs: the data sources' own
// type, so one value means the same to BASE_BACKUP and to Jobs.
type Checkpoint = source.Checkpoint

// The checkpoint modes.
const (
	CheckpointSpread = source.CheckpointSpread // the default: spread over checkpoint_completion_target
	CheckpointFast   = source.CheckpointFast   // as fast as possible (more I/O at once)
)

// Default network and progress bounds (Config.KeepaliveIdle ... Config.ProgressTimeout): with
// them a cut network or a dead host is noticed, on walweave's side and on the server's, within
// about 50 s (DefaultTCPUserTimeout after the last answer, plus up to 10 s until the next
// probe or status update is sent during the checkpoint; keepalive probing starts after 10 s of
// silence), and a server that stops sending on a live connection within
// DefaultProgressTimeout.
const (
	DefaultKeepaliveIdle     = 10 * time.Second
	DefaultKeepaliveInterval = 5 * time.Second
	DefaultKeepaliveCount    = 6
	DefaultTCPUserTimeout    = 40 * time.Second
	DefaultProgressTimeout   = pgrepl.DefaultProgressTimeout
)

// StandbyConfig says what a backup of a standby does with the standby's own recovery settings.
type StandbyConfig string

// The StandbyConfig choices.
const (
	// StandbyKeep (the default) keeps what the server sends: a backup of a standby then holds
	// the standby's standby.signal and its primary_conninfo/primary_slot_name in
	// postgresql.auto.conf, so that a restored copy starts as a standby of the same primary
	// (as pg_basebackup's copy does).
	StandbyKeep StandbyConfig = "keep"
	// StandbyDrop leaves the standby's standby.signal out and removes primary_conninfo and
	// primary_slot_name from postgresql.auto.conf: the restored copy recovers to the end of the
	// backup's WAL and comes up as a primary of its own. With WriteRecoveryConf, walweave's own
	// settings are written instead.
	StandbyDrop StandbyConfig = "drop"
)

// Config describes one backup. The zero value (plus ConnString) is a sensible backup: spread
// checkpoint, no rate limit, 24 ring slots, a temporary slot, checksums verified, CRC32C
// manifest checksums, no recovery configuration, the default network and progress bounds
// above, silent.
type Config struct {
	// Name names the server in errors and logs (a fleet's node name); default: host:port.
	Name string
	// ConnString is a libpq connection string (keyword/value or URL). PG* environment
	// variables and .pgpass are honoured as pgconn does; walweave adds replication=true itself.
	ConnString string
	// Label is the backup label (default "walweave").
	Label string
	// Checkpoint is "spread" (default) or "fast".
	Checkpoint Checkpoint
	// MaxRate limits the server's send rate in bytes per second (0 = unlimited). The server
	// counts in kB/s with a minimum of 32 kB/s; lower values are raised to that.
	MaxRate int64
	// RingSlots is how many complete WAL segments may wait in memory (default 24).
	RingSlots int
	// Budget, when set, is a memory budget the ring shares with other backups' rings (a
	// fleet backup): queued WAL counts against it as well as against RingSlots.
	Budget *ringbuf.Budget
	// SlotName uses an existing permanent physical replication slot instead of a temporary one.
	SlotName string
	// NoVerifyChecksums turns off the server's data checksum verification (on by default).
	NoVerifyChecksums bool
	// ManifestChecksums is the manifest's file checksum algorithm: NONE, CRC32C (default),
	// SHA224, SHA256, SHA384 or SHA512.
	ManifestChecksums string
	// ServerCompression has the server compress each archive before sending it: "lz4", "lz4:N"
	// (level 1..12; the default is lz4's fast mode), "zstd", or "zstd:level=N,workers=W"
	// (level -131072..22, default 3; W server threads compress, 0 = in the walsender itself;
	// ",long" for long-distance matching, 16+). walweave decompresses the archives as they
	// arrive, so the stream it writes is the same plain tar; what changes is the traffic
	// (pgbench data: a tenth with lz4, less with zstd) and the work: the server compresses,
	// the client decompresses. "" or "none" (the default) sends the archives as they are.
	// The server must be built with the library (Debian's and PGDG's packages have both).
	// MaxRate then limits compressed bytes.
	ServerCompression string
	// WriteRecoveryConf adds standby.signal and primary_conninfo (and primary_slot_name with
	// SlotName) so the restored copy starts as a streaming standby of the source.
	WriteRecoveryConf bool
	// RecoveryConfPassword keeps the password in primary_conninfo (left out by default).
	RecoveryConfPassword bool
	// Progress, when set, is called from the backup goroutine about once per ProgressInterval
	// (default 1s) and once at every phase change. Setting it asks the server to size the
	// backup first (BASE_BACKUP's PROGRESS option), so TotalBytes is known.
	Progress func(Progress)
	// ProgressInterval is the minimum time between Progress calls in one phase.
	ProgressInterval time.Duration
	// Logger receives debug and info logs; nil logs nothing.
	Logger *slog.Logger
	// Jobs, when 2 or more, reads the data files over SQL instead of BASE_BACKUP: a
	// non-exclusive backup (pg_backup_start/pg_backup_stop) and pg_read_binary_file over Jobs
	// ordinary connections, each fetching ahead (package source/sqlfetch). On a link that caps
	// each TCP flow this multiplies the throughput; the WAL still streams on the replication
	// connection. It needs full_page_writes on, a primary, and superuser or EXECUTE on
	// pg_backup_start, pg_backup_stop, pg_ls_dir, pg_stat_file and pg_read_binary_file (Backup
	// says which GRANTs are missing before anything starts). backup_label then comes at the end
	// of the data, and the manifest is built by walweave. MaxRate and ServerCompression apply
	// to BASE_BACKUP only. 0 or 1: BASE_BACKUP.
	Jobs int
	// KeepaliveIdle, KeepaliveInterval and KeepaliveCount are the TCP keepalive settings of
	// both connections, set on walweave's sockets and asked of the server for its own
	// (tcp_keepalives_idle, _interval, _count, as startup parameters); TCPUserTimeout is
	// TCP_USER_TIMEOUT on both ends (tcp_user_timeout): how long sent data may stay
	// unacknowledged, and how long a silent peer is probed, before the connection is ended.
	// Together they make a cut network or a dead host end both connections, and the server's
	// walsenders and temporary slot with them, within about TCPUserTimeout, in every phase:
	// also during the start checkpoint, when neither connection carries data. 0 means the
	// default (DefaultKeepaliveIdle ...); a negative value leaves the setting to the
	// operating system (and the connection string's options). Settings given in the
	// connection string's options (-c tcp_keepalives_idle=...) win on the server's side.
	KeepaliveIdle     time.Duration
	KeepaliveInterval time.Duration
	KeepaliveCount    int
	TCPUserTimeout    time.Duration
	// ProgressTimeout fails a side whose server sends nothing for that long on a live
	// connection (a stopped or hung walsender, a proxy that holds the connection): the data
	// side from the end of the start checkpoint to its end (the checkpoint itself sends
	// nothing, however long it takes), the WAL side while streaming (the receiver asks for a
	// keepalive at least every third of it) and during the checkpoint (an IDENTIFY_SYSTEM probe
	// must be answered within it). 0 means DefaultProgressTimeout; negative turns it off (the
	// WAL side then gives up after twice the server's wal_sender_timeout of silence, and the
	// TCP settings above still notice a dead network). The same reading holds in
	// basebackup.Config and walstream.Config (one rule for every side).
	ProgressTimeout time.Duration
	// StandbyConfig is StandbyKeep (default) or StandbyDrop: what a backup of a standby does
	// with the standby's standby.signal and primary_conninfo (see StandbyDrop).
	StandbyConfig StandbyConfig
	// Source replaces the data side (nil: BASE_BACKUP on a replication connection built from
	// ConnString). The WAL side always streams from ConnString's server; the source must back
	// up that same server (Backup checks the system identifiers). The options above that
	// configure BASE_BACKUP (Label, Checkpoint, MaxRate, ...) do not reach a caller's Source.
	Source source.Source
	// IncrementalFrom, when not nil, takes an incremental backup (PostgreSQL 17+ with
	// summarize_wal = on) relative to the prior backup whose backup_manifest this is, byte for
	// byte as the server wrote it (Result.Manifest of the prior backup, or the stream's
	// backup_manifest member). The stream then holds INCREMENTAL.<name> members for relation
	// files that changed little; restore applies it on top of the prior backup's restore
	// (restore.Chain). Refusals are *basebackup.IncrementalError (errors.Is with
	// ErrSummarizeWALOff, ErrSummariesMissing, ErrPriorOtherSystem, ErrPriorTimeline,
	// ErrPriorManifest, ErrIncrementalUnsupported).
	IncrementalFrom []byte
}

// Phase is the stage a backup is in.
type Phase string

// The phases of a backup, in order.
const (
	PhaseConnecting  Phase = "connecting"
	PhaseCheckpoint  Phase = "waiting for checkpoint"
	PhaseStreaming   Phase = "streaming"
	PhaseFinishing   Phase = "waiting for WAL"
	PhaseWritingTail Phase = "writing manifest"
	PhaseDone        Phase = "done"
	PhaseFailed      Phase = "failed" // after any of the phases above
)

// Progress is what the Progress callback receives.
type Progress struct {
	Phase         Phase
	BytesDone     int64 // data bytes received from the server (uncompressed archive bytes)
	TotalBytes    int64 // the server's estimate of the data size; 0 when unknown
	BytesWritten  int64 // bytes of the output stream written so far, WAL included
	WALSegments   int   // WAL segments written into the stream
	RingOccupancy int   // segments waiting in the ring
	RingCapacity  int
	Elapsed       time.Duration
}

// Result describes a finished (or failed) backup.
type Result struct {
	StartLSN, EndLSN           pgformat.LSN
	StartTimeline, EndTimeline uint32
	Timelines                  []uint32 // every timeline whose WAL the stream holds
	SystemID                   string
	ServerVersion              int   // server_version_num, e.g. 150018
	BytesWritten               int64 // bytes the io.Writer accepted (on failure: what went out before it)
	DataFiles                  int   // regular files from the server's archives
	WALSegments                int   // pg_wal segments in the stream
	HistoryFiles               int
	Tablespaces                int
	SlotName                   string
	RingHighWater              int
	WALBlocked                 time.Duration // time the WAL receiver waited for room in the ring
	// ArchiveBytesReceived is the size of the server's archives as they came over the network:
	// compressed with ServerCompression, else the archives' tar bytes.
	ArchiveBytesReceived int64
	Duration             time.Duration
	// CheckpointWait is the time the server's start checkpoint took (PhaseCheckpoint).
	CheckpointWait time.Duration
	// Incremental is true for an incremental backup (Config.IncrementalFrom).
	Incremental bool
	// Manifest is the backup_manifest written at the end of the stream (set by Finish): keep
	// it to take the next incremental backup without reading the stream back.
	Manifest []byte
}

// Validate reports the first invalid setting of c, as Backup does before it connects. It
// changes nothing in c.
func (c Config) Validate() error { return c.normalize() }

func (c *Config) normalize() error {
	if strings.TrimSpace(c.Label) == "" {
		c.Label = "walweave"
	}
	cp, err := c.Checkpoint.Normalize()
	if err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	c.Checkpoint = cp
	if c.MaxRate < 0 {
		return fmt.Errorf("mux: max rate %d is negative (0 means unlimited)", c.MaxRate)
	}
	if c.RingSlots == 0 {
		c.RingSlots = ringbuf.DefaultSlots
	}
	if c.RingSlots < 1 {
		return fmt.Errorf("mux: ring slots %d: need at least 1", c.RingSlots)
	}
	if c.ManifestChecksums == "" {
		c.ManifestChecksums = "CRC32C"
	}
	alg, err := pgformat.CanonicalChecksum(c.ManifestChecksums)
	if err != nil {
		return fmt.Errorf("mux: manifest checksum algorithm %q is not one of %s", c.ManifestChecksums, strings.Join(pgformat.ChecksumAlgorithms, ", "))
	}
	c.ManifestChecksums = alg
	if _, _, err := basebackup.ParseCompression(c.ServerCompression); err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	if c.Jobs < 0 || c.Jobs > 256 {
		return fmt.Errorf("mux: %d jobs: want 0..256", c.Jobs)
	}
	if err := c.checkSourceOptions(); err != nil {
		return err
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.KeepaliveIdle, DefaultKeepaliveIdle)
	def(&c.KeepaliveInterval, DefaultKeepaliveInterval)
	def(&c.TCPUserTimeout, DefaultTCPUserTimeout)
	def(&c.ProgressTimeout, DefaultProgressTimeout)
	if c.KeepaliveCount == 0 {
		c.KeepaliveCount = DefaultKeepaliveCount
	}
	for _, k := range []struct {
		name string
		d    time.Duration
	}{{"keepalive idle", c.KeepaliveIdle}, {"keepalive interval", c.KeepaliveInterval}} {
		if k.d > 0 && k.d < time.Second {
			return fmt.Errorf("mux: %s %v: the server counts it in whole seconds; use 1s or more (or a negative value for the system default)", k.name, k.d)
		}
	}
	switch c.StandbyConfig {
	case "":
		c.StandbyConfig = StandbyKeep
	case StandbyKeep, StandbyDrop:
	default:
		return fmt.Errorf("mux: standby config %q is not keep or drop", c.StandbyConfig)
	}
	return nil
}

// dataSource is which data source a Config uses.
type dataSource string

const (
	srcBaseBackup dataSource = "BASE_BACKUP"
	srcJobs       dataSource = "reading files over SQL with jobs"
	srcCustom     dataSource = "a caller's Source"
)

func (c *Config) dataSource() dataSource {
	switch {
	case c.Source != nil:
		return srcCustom
	case c.Jobs >= 2:
		return srcJobs
	}
	return srcBaseBackup
}

// sourceOptions are the options that configure one data source only: set with another, they
// are refused (they would be ignored). The one table of which option goes with which source.
var sourceOptions = []struct {
	option string
	set    func(*Config) bool
	source dataSource
	why    string
}{
	{"max rate (MaxRate)", func(c *Config) bool { return c.MaxRate > 0 }, srcBaseBackup, "the server limits BASE_BACKUP's send rate"},
	{"server compression (ServerCompression)", func(c *Config) bool {
		method, _, _ := basebackup.ParseCompression(c.ServerCompression)
		return method != ""
	}, srcBaseBackup, "the server compresses BASE_BACKUP's archives"},
	{"an incremental backup (IncrementalFrom)", func(c *Config) bool { return c.IncrementalFrom != nil }, srcBaseBackup, "an incremental backup needs BASE_BACKUP (the server's WAL summaries)"},
	{"jobs (Jobs)", func(c *Config) bool { return c.Jobs >= 2 && c.Source != nil }, srcJobs, "Jobs chooses walweave's own SQL source"},
}

// checkSourceOptions refuses an option set for a data source it does not configure.
func (c *Config) checkSourceOptions() error {
	src := c.dataSource()
	for _, o := range sourceOptions {
		if o.set(c) && o.source != src {
			return fmt.Errorf("mux: %s applies to %s, not to %s: %s; choose one", o.option, o.source, src, o.why)
		}
	}
	return nil
}

// tcp is the keepalive and user-timeout settings for both connections.
func (c *Config) tcp() pgrepl.TCP {
	pos := func(d time.Duration) time.Duration { return max(d, 0) }
	return pgrepl.TCP{KeepaliveIdle: pos(c.KeepaliveIdle), KeepaliveInterval: pos(c.KeepaliveInterval),
		KeepaliveCount: max(c.KeepaliveCount, 0), UserTimeout: pos(c.TCPUserTimeout)}
}

// progressTimeout is ProgressTimeout as it applies (0: off).
func (c *Config) progressTimeout() time.Duration { return pgrepl.ProgressTimeout(c.ProgressTimeout) }
