// Package sqlfetch is a data source that reads the server's files over SQL: a non-exclusive
// backup (pg_backup_start / pg_backup_stop on one session that stays open throughout), a file
// list from a recursive pg_ls_dir + pg_stat_file walk with BASE_BACKUP's exclusions, and the
// files' bytes from pg_read_binary_file over N ordinary connections. It needs no agent on
// the database host and no replication connection (the WAL still streams through one, on the
// orchestrator's side), and it uses N TCP flows where BASE_BACKUP uses one: on a link that
// caps each flow, N times the bandwidth.
//
// The members come out in the order the writer needs (tablespaces first, then the main
// directory, global/pg_control last, then backup_label, whose content exists only once
// pg_backup_stop has run). The bytes are fetched ahead: the files are cut into tasks of at
// most ChunkSize bytes (one chunk of a large file, or several small files), and the
// connections claim tasks in order, at most Window tasks per connection ahead of the one the
// writer reads, each keeping Depth queries in flight (pipeline mode). A 1 GiB relation
// segment is therefore fetched by every connection at once, and the memory held is at most
// Jobs x Window x ChunkSize (MemoryBound). A reader copies a result out of its socket only
// when the writer is within ReadAhead tasks of it (GOMAXPROCS by default): until then the
// window's bytes wait in the kernel's socket buffers, and a chunk lands in a buffer the
// writer released a moment before, still in the CPU's caches. A chunk comes as rows of at most RowSize (128 KiB)
// from one query: a backend that sends a 1 MiB row allocates, copies and frees several
// megabytes for it, and spends more CPU per byte on that than on reading the file (the
// numbers are in bench/README.md).
//
// The per-byte work is spread: the reader that fetched a task checks its page checksums and
// computes the CRC-32C of each piece for the manifest on its own goroutine (one per
// connection), so the goroutine that serves the members only hands the fetched chunks to the
// writer, in order, without copying them (fileReader.WriteTo).
//
// As BASE_BACKUP does: files that vanish between the listing and the read are left out; files
// that shrink are zero-padded to the listed size; files that grow are cut at it; page
// checksums are verified (pages new or changed since the backup's start skipped, a failing
// page read again once), failures reported as *source.ChecksumError; the backup_manifest is
// built here (version 1 for 15 and 16, 2 with System-Identifier for 17+) with the chosen
// checksum algorithm and the backup's WAL range.
package sqlfetch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walweave/walweave/internal/conninfo"
	"github.com/walweave/walweave/internal/pgerr"
	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/source"
	"github.com/walweave/walweave/tarw"
)

// Defaults.
const (
	DefaultChunkSize = 1 << 20
	DefaultWindow    = 4
	DefaultDepth     = 3
	DefaultRowSize   = 128 << 10
	maxBatchFiles    = 256
)

// Config configures the source.
type Config struct {
	// ConnString is a libpq connection string for ordinary (non-replication) connections. A
	// "replication" keyword in it is ignored. Without a database in it (dbname, or PGDATABASE),
	// the connections go to database "postgres".
	ConnString string
	// Jobs is the number of connections reading files (at least 1); one more session holds
	// the backup open.
	Jobs int
	// ChunkSize is the most bytes one query fetches (default 1 MiB; a multiple of 32 KiB).
	ChunkSize int
	// Window is how many tasks each connection may fetch ahead of the writer (default 4).
	Window int
	// Depth is how many queries each connection keeps in flight (default 3).
	Depth int
	// ReadAhead is how many tasks past the one the writer is on the readers may copy out of
	// their sockets (default GOMAXPROCS: as many readers copy at once as there are cores to
	// run them; -1: every result as soon as it arrives). The rest of the window waits in the
	// sockets' kernel buffers, so that a chunk is copied into a buffer the writer released a
	// moment before, still in the CPU's caches, and page-checked there: about a fifth less
	// client CPU than copying each into a buffer of the window as it arrives (bench/README.md).
	ReadAhead int
	// RowSize is the most bytes one row of a chunk's query carries: a chunk larger than this
	// is read as several rows of one query (default DefaultRowSize; -1: one row per chunk).
	RowSize int
	// Label is the backup label; Checkpoint the start checkpoint's mode ("" means spread).
	Label      string
	Checkpoint source.Checkpoint
	// ManifestChecksums is the manifest's file checksum algorithm (default CRC32C).
	ManifestChecksums string
	// NoVerifyChecksums turns off the page checksum verification.
	NoVerifyChecksums bool
	// ClientCRC computes the manifest's CRC-32C checksums on this side even where the server
	// could (crc32c(bytea), PostgreSQL 18 and later: each query then returns its values'
	// CRC-32C, which costs the server about 0.02 s of CPU per GiB and the client none).
	ClientCRC bool
	// TCP are the keepalive and user-timeout settings of every connection (both ends), as the
	// replication connections get them: a cut network ends the sessions, and the server's
	// backup with them.
	TCP    pgrepl.TCP
	Logger *slog.Logger
}

// Source is the SQL file-fetch source (source.Source).
type Source struct {
	cfg Config
	log *slog.Logger

	ctrl    *pgconn.PgConn        // holds the backup; listing, pg_control, re-reads
	workers []*pgconn.PgConn      // read the files
	batched []*pgrepl.BatchedConn // their sockets, read in batches while the files are fetched
	wire    []*wireConn           // the readers' connections, taken over from pgconn
	ctx     context.Context       // the fetch's: cancelled by Close or a worker's failure
	cancel  context.CancelCauseFunc

	version     int
	control     pgformat.ControlFile
	groupAccess bool
	verify      bool // page checksums verified

	started     bool
	startLSN    pgformat.LSN
	timeline    uint32
	tablespaces []*source.Tablespace
	members     []*member
	fetch       *fetcher
	onProgress  func(int64)

	// the writer's position
	mi        int // next member
	cur       *fileReader
	taskIdx   int // task holding the next piece
	pieceIdx  int
	held      int // task whose pieces the current reader may still hold, -1 none
	stage     int // 0 members, 1 pg_control, 2 backup_label, 3 done
	done      int64
	manifest  bytes.Buffer
	mb        *pgformat.ManifestBuilder
	alg       string
	crc       bool        // the manifest's checksums are CRC-32C, computed per piece by the readers
	serverCRC bool        // the server has crc32c(bytea) (18 and later) and may compute them
	stopped   atomic.Bool // pg_backup_stop returned: the backup is over on the server
	endLSN    pgformat.LSN
	label     []byte
	checksum  source.ChecksumError
	failFiles map[string]int
	vanished  int // files listed that no longer existed when read
	padded    int // files that shrank while read, zero-padded

	closeOnce sync.Once
}

// member is one file, directory or link to send.
type member struct {
	entry
	ts      *source.Tablespace // nil for the main data directory
	path    string             // what the server reads, relative to the data directory
	npieces int
}

// New returns a source; nothing connects before Open.
func New(cfg Config) *Source {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Depth <= 0 {
		cfg.Depth = DefaultDepth
	}
	if cfg.ReadAhead == 0 {
		cfg.ReadAhead = runtime.GOMAXPROCS(0)
	}
	if cfg.RowSize == 0 {
		cfg.RowSize = DefaultRowSize
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = 1
	}
	if cfg.Label == "" {
		cfg.Label = "walweave"
	}
	if cfg.ManifestChecksums == "" {
		cfg.ManifestChecksums = pgformat.ChecksumCRC32C
	}
	return &Source{cfg: cfg, log: log, held: -1}
}

// MemoryBound is the most file bytes the source holds at once: Jobs x Window x ChunkSize.
func (c Config) MemoryBound() int64 {
	s := New(c)
	return int64(s.cfg.Jobs) * int64(s.cfg.Window) * int64(s.cfg.ChunkSize)
}

// Validate checks the settings without connecting.
func (c Config) Validate() error {
	if c.ChunkSize != 0 && (c.ChunkSize < 32<<10 || c.ChunkSize%(32<<10) != 0 || c.ChunkSize > 256<<20) {
		return fmt.Errorf("sqlfetch: chunk size %d is not a multiple of 32 KiB between 32 KiB and 256 MiB", c.ChunkSize)
	}
	if c.Jobs < 0 || c.Jobs > 256 {
		return fmt.Errorf("sqlfetch: %d jobs: want 1..256", c.Jobs)
	}
	if c.ManifestChecksums != "" {
		if _, err := pgformat.CanonicalChecksum(c.ManifestChecksums); err != nil {
			return fmt.Errorf("sqlfetch: %w", err)
		}
	}
	return nil
}

// connConfig is the configuration of an ordinary connection.
func (s *Source) connConfig() (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(s.cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	delete(cfg.RuntimeParams, "replication")
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "walweave"
	}
	if _, named := conninfo.Database(s.cfg.ConnString); !named {
		cfg.Database = "postgres"
	}
	// A backup runs as long as it takes: no statement, lock or idle limits on its sessions.
	for _, k := range []string{"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "idle_session_timeout"} {
		cfg.RuntimeParams[k] = "0"
	}
	pgrepl.ApplyTCP(cfg, s.cfg.TCP)
	// The recursive listing's row estimate is huge (thousands of rows per pg_ls_dir call, per
	// level), which makes the planner JIT-compile it: 300 ms of compiling for a query that
	// runs in 2 ms.
	cfg.RuntimeParams["jit"] = "off"
	return cfg, nil
}

// Open connects the session that will hold the backup, checks the server and the role
// (preflight: nothing is started or written before it passes), reads pg_control and
// connects the readers.
func (s *Source) Open(ctx context.Context) (_ source.Info, err error) {
	// Every error here comes from an ordinary connection: its SQLSTATE is read as such.
	defer func() { err = pgerr.On(pgerr.Ordinary, err) }()
	if err := s.cfg.Validate(); err != nil {
		return source.Info{}, err
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	cc, err := s.connConfig()
	if err != nil {
		return source.Info{}, err
	}
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { s.log.Info("server: "+n.Message, "severity", n.Severity) }
	// The readers connect while the control session checks the server: on a distant server
	// each connection costs several round trips.
	s.workers = make([]*pgconn.PgConn, s.cfg.Jobs)
	s.batched = make([]*pgrepl.BatchedConn, s.cfg.Jobs)
	errs := make([]error, s.cfg.Jobs)
	var wg sync.WaitGroup
	for i := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc, err := s.connConfig()
			if err == nil {
				s.batchSocket(wc, i)
				s.workers[i], err = pgconn.ConnectConfig(ctx, wc)
				err = pgerr.On(pgerr.Ordinary, err)
			}
			errs[i] = err
		}()
	}
	defer wg.Wait() // on every return: Close then closes what connected
	s.ctrl, err = pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		return source.Info{}, fmt.Errorf("connect for reading files: %w", pgerr.On(pgerr.Ordinary, err))
	}
	info := source.Info{ServerVersion: pgrepl.ServerVersionNum(s.ctrl)}
	s.version = info.ServerVersion
	if err := pgerr.CheckVersion(info.ServerVersion, s.ctrl.ParameterStatus("server_version")); err != nil {
		return info, err
	}
	if err := s.preflight(ctx); err != nil {
		return info, err
	}
	info.GroupAccess = s.groupAccess
	ctl, err := s.readControl(ctx)
	if err != nil {
		return info, err
	}
	s.control = ctl
	info.SystemID = strconv.FormatUint(ctl.SystemIdentifier, 10)
	s.verify = !s.cfg.NoVerifyChecksums && ctl.DataChecksumVersion != 0
	if ctl.BlockSize == 0 || int(ctl.BlockSize) > s.cfg.ChunkSize || s.cfg.ChunkSize%int(ctl.BlockSize) != 0 {
		return info, fmt.Errorf("block size %d does not divide the chunk size %d", ctl.BlockSize, s.cfg.ChunkSize)
	}

	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return info, fmt.Errorf("connect %d readers (--jobs): %w; the server may need a higher max_connections", s.cfg.Jobs, err)
	}
	for _, c := range s.workers {
		w, err := takeOver(ctx, c)
		if err != nil {
			return info, fmt.Errorf("take over a reader's connection: %w", err)
		}
		s.wire = append(s.wire, w)
	}
	s.log.Debug("readers connected", "jobs", s.cfg.Jobs, "chunk", s.cfg.ChunkSize, "window", s.cfg.Window, "depth", s.cfg.Depth, "memory_bound", s.cfg.MemoryBound())
	return info, nil
}

// batchSocket puts reader i's socket under a pgrepl.BatchedConn (the last one dialled is the
// connection's: pgconn may try several hosts, or TLS then plain). While the files are fetched
// the kernel then wakes the reader once a chunk's worth of bytes is queued (SO_RCVLOWAT)
// rather than for every segment the backend sends: the same batching as BASE_BACKUP's
// connection, and most of the system time a reader spent (bench/README.md).
func (s *Source) batchSocket(cfg *pgconn.Config, i int) {
	after := cfg.AfterNetConnect
	lowWater := min(s.cfg.ChunkSize, pgrepl.DefaultBatchLowWater)
	cfg.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, nc net.Conn) (net.Conn, error) {
		if after != nil {
			var err error
			if nc, err = after(ctx, c, nc); err != nil {
				return nil, err
			}
		}
		s.batched[i] = pgrepl.NewBatchedConnSize(s.ctx, nc, lowWater, pgrepl.DefaultBatchWait)
		return s.batched[i], nil
	}
}

// value runs a query returning one text value on the control session.
func (s *Source) value(ctx context.Context, sql string, args ...string) (string, error) {
	rows, err := s.rows(ctx, sql, args...)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", fmt.Errorf("%s: %d rows", sql, len(rows))
	}
	return rows[0][0], nil
}

func (s *Source) rows(ctx context.Context, sql string, args ...string) ([][]string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := s.ctrl.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	out := make([][]string, len(res.Rows))
	for i, r := range res.Rows {
		out[i] = make([]string, len(r))
		for j, v := range r {
			out[i][j] = string(v)
		}
	}
	return out, nil
}

// readBinary reads a file (or part of it) on the control session; nil when it does not exist.
func (s *Source) readBinary(ctx context.Context, p string, off, n int64) ([]byte, error) {
	res := s.ctrl.ExecParams(ctx, readOne,
		[][]byte{[]byte(p), strconv.AppendInt(nil, off, 10), strconv.AppendInt(nil, n, 10)},
		[]uint32{oidText, oidInt8, oidInt8}, nil, []int16{1}).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("read %s: %w", p, res.Err)
	}
	if len(res.Rows) != 1 {
		return nil, fmt.Errorf("read %s: %d rows", p, len(res.Rows))
	}
	return res.Rows[0][0], nil
}

func (s *Source) readControl(ctx context.Context) (pgformat.ControlFile, error) {
	var last error
	for try := 0; try < 3; try++ { // a read racing a write of pg_control fails its CRC
		b, err := s.readBinary(ctx, "global/pg_control", 0, pgformat.ControlFileSize)
		if err != nil {
			return pgformat.ControlFile{}, err
		}
		ctl, err := pgformat.ParseControlFile(b)
		if err == nil {
			return ctl, nil
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
	return pgformat.ControlFile{}, fmt.Errorf("read global/pg_control: %w", last)
}

// Start starts the backup (pg_backup_start; the checkpoint runs inside it), lists the files
// and starts the readers.
func (s *Source) Start(ctx context.Context, progress func(bytesDone int64)) (source.Start, error) {
	s.onProgress = progress
	t0 := time.Now()
	// One round trip: pg_backup_start (the checkpoint runs inside it), then, in the same
	// session and after it, pg_control (the backup's checkpoint and timeline are in it now),
	// the tablespaces and the main directory's file list.
	res, err := s.batch(ctx, []query{
		{sql: "SELECT pg_catalog.pg_backup_start($1, $2)::text", args: []string{s.cfg.Label, strconv.FormatBool(s.cfg.Checkpoint == source.CheckpointFast)}},
		{sql: readOne, args: []string{"global/pg_control", "0", strconv.Itoa(pgformat.ControlFileSize)}, oids: []uint32{oidText, oidInt8, oidInt8}, binary: true},
		{sql: tablespacesSQL},
		s.walkQuery(".", "pg\\_tblspc/%"),
	})
	if len(res) > 0 && res[0].Err == nil {
		s.started = true
	}
	if err != nil {
		return source.Start{}, fmt.Errorf("pg_backup_start: %w", err)
	}
	if len(res[0].Rows) != 1 {
		return source.Start{}, fmt.Errorf("pg_backup_start: %d rows", len(res[0].Rows))
	}
	if s.startLSN, err = pgformat.ParseLSN(string(res[0].Rows[0][0])); err != nil {
		return source.Start{}, fmt.Errorf("pg_backup_start: %w", err)
	}
	var ctl pgformat.ControlFile
	if len(res[1].Rows) == 1 {
		ctl, err = pgformat.ParseControlFile(res[1].Rows[0][0])
	}
	if len(res[1].Rows) != 1 || err != nil {
		// A read racing a write of pg_control fails its CRC: read it again.
		if ctl, err = s.readControl(ctx); err != nil {
			return source.Start{}, err
		}
	}
	s.timeline = ctl.Timeline
	st := source.Start{StartLSN: s.startLSN, Timeline: s.timeline}
	t1 := time.Now()
	if err := s.list(ctx, textRows(res[2]), textRows(res[3])); err != nil {
		return st, err
	}
	s.log.Debug("backup start and file list", "pg_backup_start", t1.Sub(t0), "list", time.Since(t1))
	for _, ts := range s.tablespaces {
		st.Tablespaces = append(st.Tablespaces, *ts)
	}
	var files []int
	sizes := make([]int64, len(s.members))
	for i, m := range s.members {
		if !m.dir && m.link == "" && m.size > 0 {
			files = append(files, i)
			sizes[i] = m.size
			st.TotalSize += m.size
		}
	}
	tasks := planTasks(sizes, files, int64(s.cfg.ChunkSize), maxBatchFiles)
	for _, t := range tasks {
		for _, p := range t.pieces {
			s.members[p.m].npieces++
		}
	}
	s.log.Info("backup started over SQL", "start_lsn", s.startLSN, "timeline", s.timeline, "members", len(s.members),
		"bytes", st.TotalSize, "tasks", len(tasks), "jobs", s.cfg.Jobs, "memory_bound", s.cfg.MemoryBound())

	alg, err := pgformat.CanonicalChecksum(s.cfg.ManifestChecksums)
	if err != nil {
		return st, err
	}
	s.alg = alg
	opts := pgformat.ManifestOptions{Version: 1, Algorithm: alg}
	if s.version >= 170000 {
		opts.Version, opts.SystemIdentifier = 2, s.control.SystemIdentifier
	}
	if s.mb, err = pgformat.NewManifestBuilder(&s.manifest, opts); err != nil {
		return st, err
	}

	s.newFetch(tasks)
	paths := func(m int) string { return s.members[m].path }
	for i, wc := range s.wire {
		bc := s.batched[i]
		if bc != nil {
			bc.Batch(true)
		}
		s.fetch.wg.Add(1)
		go s.fetch.work(wc, bc, paths, func(err error) { s.cancel(fmt.Errorf("reading files: %w", err)) })
	}
	return st, nil
}

// newFetch sets up the fetch of tasks; the readers start with fetcher.work.
func (s *Source) newFetch(tasks []*task) {
	s.fetch = newFetcher(s.ctx, tasks, s.cfg.Window*s.cfg.Jobs, s.cfg.Depth, s.cfg.ChunkSize)
	if s.cfg.ReadAhead > 0 {
		s.fetch.readAhead = s.cfg.ReadAhead + 1 // and the task the writer holds while it waits for the next
	}
	if ut := s.cfg.TCP.UserTimeout; ut > 0 {
		s.fetch.turnWait = min(maxTurnWait, ut/4)
	}
	s.fetch.rowSize = max(s.cfg.RowSize, 0)
	s.crc = s.alg == pgformat.ChecksumCRC32C
	s.fetch.serverCRC = s.crc && s.serverCRC
	if s.verify || s.crc {
		s.fetch.prepare = s.prepare
	}
}

// prepare runs on the reader that fetched t, before the writer takes it: it checks the page
// checksums of every piece (noting the pages that fail, which the writer reads again on the
// control session) and computes each piece's CRC-32C for the manifest. The writer's goroutine
// is left with copying the bytes into the stream, in order; this work spreads over the
// readers, one per connection, and so over the cores. It reads only what Start set before the
// readers began (members, control, startLSN).
func (s *Source) prepare(t *task) {
	compute := s.crc && t.crc == nil // unless the server sent them
	if compute {
		t.crc = make([]uint32, len(t.data))
	}
	for k, p := range t.pieces {
		data := t.data[k]
		if s.verify {
			if segno, ok := checksummed(s.members[p.m].path); ok {
				if bad := s.badPages(segno, p.off, data); bad != nil {
					if t.bad == nil {
						t.bad = make([][]int32, len(t.data))
					}
					t.bad[k] = bad
				}
			}
		}
		if compute {
			t.crc[k] = crc32.Update(0, pgformat.Castagnoli, data)
		}
	}
}

// badPages returns the indexes of the pages of data (from offset off of a file of segment
// segno) whose checksum fails, by the server's rule (pageOK).
func (s *Source) badPages(segno uint32, off int64, data []byte) []int32 {
	bs := int(s.control.BlockSize)
	start := uint64(s.startLSN)
	var bad []int32
	for k := 0; (k+1)*bs <= len(data); k++ {
		blkno := uint32(off/int64(bs)) + uint32(k) + segno*s.control.RelsegSize
		if !pageOK(data[k*bs:(k+1)*bs], blkno, start) {
			bad = append(bad, int32(k))
		}
	}
	return bad
}

// walk lists root recursively: paths relative to root, directories not descended into when
// their name is in noDescend or their path matches skipLike (a LIKE pattern, "" for none).
const walkSQL = `WITH RECURSIVE walk(rel, name, isdir, size, mtime) AS (
    SELECT n, n, s.isdir, s.size, extract(epoch FROM s.modification)::int8
      FROM pg_catalog.pg_ls_dir($1, true, false) AS n,
           LATERAL pg_catalog.pg_stat_file($1 || '/' || n, true) AS s
  UNION ALL
    SELECT w.rel || '/' || n, n, s.isdir, s.size, extract(epoch FROM s.modification)::int8
      FROM walk AS w,
           LATERAL pg_catalog.pg_ls_dir($1 || '/' || w.rel, true, false) AS n,
           LATERAL pg_catalog.pg_stat_file($1 || '/' || w.rel || '/' || n, true) AS s
     WHERE w.isdir AND w.name <> ALL ($2::text[]) AND w.name NOT LIKE 'pgsql\_tmp%'
       AND ($3 = '' OR w.rel NOT LIKE $3) AND w.rel <> 'pg_wal'
)
SELECT rel, isdir, size, mtime FROM walk WHERE size IS NOT NULL`

const tablespacesSQL = `SELECT oid::text, pg_catalog.pg_tablespace_location(oid) FROM pg_catalog.pg_tablespace
	WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid`

// walkQuery lists root (see walkSQL).
func (s *Source) walkQuery(root, skipLike string) query {
	var names []byte
	names = append(names, '{')
	i := 0
	for n := range excludeDirContents {
		if i > 0 {
			names = append(names, ',')
		}
		names = appendArrayString(names, n)
		i++
	}
	names = append(names, '}')
	return query{sql: walkSQL, args: []string{root, string(names), skipLike}}
}

func walkEntries(rows [][]string) []entry {
	list := make([]entry, 0, len(rows))
	for _, r := range rows {
		size, _ := strconv.ParseInt(r[2], 10, 64)
		mtime, _ := strconv.ParseInt(r[3], 10, 64)
		list = append(list, entry{rel: r[0], dir: r[1] == "t", size: size, mtime: mtime})
	}
	return list
}

// query is one statement of a batch.
type query struct {
	sql    string
	args   []string
	oids   []uint32
	binary bool // the result in binary format
}

// batch runs queries on the control session in one round trip (pipeline mode, one sync
// point at the end: a failing statement skips the rest). It returns the results in order,
// and the first error.
func (s *Source) batch(ctx context.Context, qs []query) ([]*pgconn.Result, error) {
	pl := s.ctrl.StartPipeline(ctx)
	for _, q := range qs {
		params := make([][]byte, len(q.args))
		for i, a := range q.args {
			params[i] = []byte(a)
		}
		var rf []int16
		if q.binary {
			rf = []int16{1}
		}
		pl.SendQueryParams(q.sql, params, q.oids, nil, rf)
	}
	pl.SendPipelineSync()
	var out []*pgconn.Result
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	if err := pl.Flush(); err != nil {
		fail(err)
	}
	for first == nil {
		r, err := pl.GetResults()
		if err != nil {
			fail(err)
			break
		}
		if _, ok := r.(*pgconn.PipelineSync); ok {
			break
		}
		rr, ok := r.(*pgconn.ResultReader)
		if !ok {
			if r == nil {
				fail(errors.New("the pipeline ended early"))
				break
			}
			continue
		}
		res := rr.Read()
		out = append(out, res)
		if res.Err != nil {
			fail(res.Err)
		}
	}
	if err := pl.Close(); err != nil {
		fail(err)
	}
	if first == nil && len(out) != len(qs) {
		first = fmt.Errorf("%d results for %d statements", len(out), len(qs))
	}
	return out, first
}

func textRows(r *pgconn.Result) [][]string {
	out := make([][]string, len(r.Rows))
	for i, row := range r.Rows {
		out[i] = make([]string, len(row))
		for j, v := range row {
			out[i][j] = string(v)
		}
	}
	return out
}

// list builds the members from the tablespaces and the main directory's listing: every
// tablespace's (listed here, in one more round trip), then the main directory's.
func (s *Source) list(ctx context.Context, tsRows, mainRows [][]string) error {
	versionDir := fmt.Sprintf("PG_%d_%d", s.version/10000, s.control.CatalogVersion)
	byOID := map[string]*source.Tablespace{}
	var qs []query
	var tss []*source.Tablespace
	for _, r := range tsRows {
		ts := &source.Tablespace{OID: r[0], Location: r[1]}
		root := "pg_tblspc/" + ts.OID + "/" + versionDir
		qs = append(qs, query{sql: "SELECT extract(epoch FROM modification)::int8 FROM pg_catalog.pg_stat_file($1, true) WHERE size IS NOT NULL", args: []string{root}},
			s.walkQuery(root, ""))
		tss = append(tss, ts)
	}
	var res []*pgconn.Result
	if len(qs) > 0 {
		var err error
		if res, err = s.batch(ctx, qs); err != nil {
			return fmt.Errorf("list the tablespaces: %w", err)
		}
	}
	for i, ts := range tss {
		st := textRows(res[2*i])
		if len(st) == 0 {
			continue // dropped meanwhile
		}
		list := walkEntries(textRows(res[2*i+1]))
		for i := range list {
			list[i].rel = versionDir + "/" + list[i].rel
		}
		mtime, _ := strconv.ParseInt(st[0][0], 10, 64)
		list = append(list, entry{rel: versionDir, dir: true, mtime: mtime})
		sortEntries(list)
		for _, e := range filter(list, true) {
			ts.Size += e.size
			s.members = append(s.members, &member{entry: e, ts: ts, path: "pg_tblspc/" + ts.OID + "/" + e.rel})
		}
		byOID[ts.OID] = ts
		s.tablespaces = append(s.tablespaces, ts)
	}

	list := walkEntries(mainRows)
	var extra []entry
	for i, e := range list {
		if e.rel == "pg_wal" {
			extra = append(extra, entry{rel: "pg_wal/archive_status", dir: true, mtime: e.mtime})
			if s.version >= 170000 {
				extra = append(extra, entry{rel: "pg_wal/summaries", dir: true, mtime: e.mtime})
			}
		}
		if path.Dir(e.rel) == "pg_tblspc" {
			ts := byOID[path.Base(e.rel)]
			switch {
			case ts == nil:
				list[i].rel = "" // not a tablespace (dropped meanwhile): left out
			case strings.HasPrefix(ts.Location, "/"):
				list[i].link, list[i].dir = ts.Location, false
			default: // in place: sent as a directory, its content as the tablespace's
			}
		}
	}
	list = append(list, extra...)
	sortEntries(list)
	for _, e := range filter(list, false) {
		if e.rel == "" {
			continue
		}
		s.members = append(s.members, &member{entry: e, path: e.rel})
	}
	return nil
}

func sortEntries(list []entry) {
	sort.Slice(list, func(i, j int) bool { return list[i].rel < list[j].rel })
}

func (s *Source) fileMode() int64 {
	if s.groupAccess {
		return 0o640
	}
	return 0o600
}

func (s *Source) dirMode() int64 {
	if s.groupAccess {
		return 0o750
	}
	return 0o700
}

// Next returns the next member: the listed ones, then global/pg_control, then backup_label
// (after pg_backup_stop), then io.EOF.
func (s *Source) Next(ctx context.Context) (source.Member, error) {
	if err := s.finishMember(ctx); err != nil {
		return source.Member{}, err
	}
	for s.stage == 0 {
		if s.mi >= len(s.members) {
			s.stage = 1
			break
		}
		m := s.members[s.mi]
		s.mi++
		h := &tarw.Member{Name: m.rel, ModTime: time.Unix(m.mtime, 0)}
		switch {
		case m.link != "":
			h.Type, h.Linkname, h.Mode = tarw.TypeSymlink, m.link, 0o777
			return source.Member{Header: h, Tablespace: m.ts}, nil
		case m.dir:
			h.Type, h.Mode = tarw.TypeDir, s.dirMode()
			return source.Member{Header: h, Tablespace: m.ts}, nil
		}
		h.Type, h.Mode, h.Size = tarw.TypeFile, s.fileMode(), m.size
		r := &fileReader{s: s, m: m, left: m.size, hash: s.newHash(), crcOn: s.crc}
		if m.npieces > 0 {
			// The first piece tells whether the file still exists.
			if err := r.nextPiece(ctx); err != nil {
				return source.Member{}, err
			}
			if r.missing {
				if err := r.skipRest(ctx); err != nil {
					return source.Member{}, err
				}
				s.log.Debug("file vanished, left out", "path", m.path)
				s.vanished++
				continue
			}
		}
		s.cur = r
		return source.Member{Header: h, Tablespace: m.ts, Data: r}, nil
	}
	switch s.stage {
	case 1:
		s.stage = 2
		s.releaseHeld()
		// Every other file has been read: pg_control last, then the backup stops, as
		// BASE_BACKUP does it (one round trip for both).
		b, err := s.stop(ctx)
		if err != nil {
			return source.Member{}, err
		}
		m := &member{entry: entry{rel: "global/pg_control", size: int64(len(b)), mtime: time.Now().Unix()}, path: "global/pg_control"}
		return s.whole(m, b), nil
	case 2:
		s.stage = 3
		m := &member{entry: entry{rel: "backup_label", size: int64(len(s.label)), mtime: time.Now().Unix()}, path: "backup_label"}
		return s.whole(m, s.label), nil
	}
	return source.Member{}, io.EOF
}

// whole returns a member whose content is in memory.
func (s *Source) whole(m *member, b []byte) source.Member {
	r := &fileReader{s: s, m: m, left: int64(len(b)), hash: s.newHash(), cur: b, crcOn: s.crc}
	if r.crcOn {
		r.crc = crc32.Update(0, pgformat.Castagnoli, b)
	}
	s.cur = r
	h := &tarw.Member{Name: m.rel, Type: tarw.TypeFile, Mode: s.fileMode(), Size: int64(len(b)), ModTime: time.Unix(m.mtime, 0)}
	return source.Member{Header: h, Data: r}
}

// failed prefers the fetch's cancellation cause (a reader's failure) to the error it caused.
func (s *Source) failed(err error) error {
	if s.ctx.Err() != nil {
		if c := context.Cause(s.ctx); c != nil {
			return c
		}
	}
	return err
}

// stop reads global/pg_control and ends the backup: pg_backup_stop gives the end position and
// backup_label's content.
func (s *Source) stop(ctx context.Context) (control []byte, err error) {
	res, err := s.batch(s.ctx, []query{
		{sql: readOne, args: []string{"global/pg_control", "0", "1048576"}, oids: []uint32{oidText, oidInt8, oidInt8}, binary: true},
		{sql: "SELECT lsn::text, labelfile FROM pg_catalog.pg_backup_stop(false)"},
	})
	if err != nil {
		if len(res) == 0 || res[0].Err != nil {
			return nil, s.failed(fmt.Errorf("read global/pg_control: %w", err))
		}
		return nil, s.failed(fmt.Errorf("pg_backup_stop: %w", err))
	}
	if len(res[0].Rows) != 1 || res[0].Rows[0][0] == nil {
		return nil, errors.New("global/pg_control does not exist")
	}
	control = res[0].Rows[0][0]
	rows := textRows(res[1])
	if len(rows) != 1 || len(rows[0]) != 2 {
		return nil, fmt.Errorf("pg_backup_stop: unexpected result %q", rows)
	}
	s.stopped.Store(true)
	if s.endLSN, err = pgformat.ParseLSN(rows[0][0]); err != nil {
		return nil, fmt.Errorf("pg_backup_stop: %w", err)
	}
	s.label = []byte(rows[0][1])
	return control, nil
}

// newHash returns the manifest's hash of a file's bytes as the writer serves them; nil for
// none, and for CRC-32C, which the readers compute per piece (fileReader.crc).
func (s *Source) newHash() hash.Hash {
	if s.alg == pgformat.ChecksumNone || s.alg == pgformat.ChecksumCRC32C {
		return nil
	}
	h, err := pgformat.NewChecksum(s.alg)
	if err != nil {
		return nil
	}
	return h
}

// finishMember reads what the writer left of the current file and adds it to the manifest.
func (s *Source) finishMember(ctx context.Context) error {
	r := s.cur
	if r == nil {
		return nil
	}
	s.cur = nil
	if r.left > 0 {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
	if r.err != nil {
		return r.err
	}
	if r.m.npieces > 0 {
		if err := r.skipRest(ctx); err != nil { // a file cut short by its listed size
			return err
		}
	}
	manPath := r.m.rel
	if r.m.ts != nil {
		manPath = "pg_tblspc/" + r.m.ts.OID + "/" + r.m.rel
	}
	var sum []byte
	switch {
	case r.crcOn:
		sum = binary.LittleEndian.AppendUint32(nil, r.crc)
	case r.hash != nil:
		sum = r.hash.Sum(nil)
	}
	return s.mb.AddFile(manPath, r.m.size, time.Unix(r.m.mtime, 0), s.alg, sum)
}

// releaseHeld releases the task the last piece came from.
func (s *Source) releaseHeld() {
	if s.held >= 0 {
		s.fetch.release(s.held)
		s.held = -1
	}
}

// piece returns the next piece in order: its bytes and whether the file was missing.
func (s *Source) piece(ctx context.Context) (piece, pieceData, bool, error) {
	for {
		if s.taskIdx >= len(s.fetch.tasks) {
			return piece{}, pieceData{}, false, errors.New("sqlfetch: no more pieces (internal error)")
		}
		t, err := s.fetch.wait(ctx, s.taskIdx)
		if err != nil {
			return piece{}, pieceData{}, false, s.failed(err)
		}
		if s.pieceIdx >= len(t.pieces) {
			s.taskIdx++
			s.pieceIdx = 0
			continue
		}
		if s.held != s.taskIdx {
			s.releaseHeld()
			s.held = s.taskIdx
		}
		k := s.pieceIdx
		s.pieceIdx++
		if t.bad != nil && len(t.bad[k]) > 0 {
			m := s.members[t.pieces[k].m]
			if segno, ok := checksummed(m.path); ok && s.recheck(m, segno, t.pieces[k].off, t.data[k], t.bad[k]) && t.crc != nil {
				t.crc[k] = crc32.Update(0, pgformat.Castagnoli, t.data[k])
			}
		}
		var crc uint32
		if t.crc != nil {
			crc = t.crc[k]
		}
		return t.pieces[k], pieceData{data: t.data[k], crc: crc}, t.miss[k], nil
	}
}

// pieceData is a piece's bytes and their CRC-32C (when the manifest uses it).
type pieceData struct {
	data []byte
	crc  uint32
}

// fileReader serves one file's bytes: its pieces in order, zero-padded to the listed size.
type fileReader struct {
	s       *Source
	m       *member
	left    int64 // bytes still to serve
	cur     []byte
	pad     int64 // zeros to serve after cur
	got     int   // pieces taken
	missing bool
	padded  bool
	hash    hash.Hash // the manifest's SHA-2 hash, nil for none or CRC-32C
	crcOn   bool      // the manifest's CRC-32C, combined from the pieces' in crc
	crc     uint32
	err     error
}

func (r *fileReader) nextPiece(ctx context.Context) error {
	p, pd, missing, err := r.s.piece(ctx)
	if err != nil {
		return err
	}
	r.got++
	if missing && r.got == 1 {
		r.missing = true
		return nil
	}
	data := pd.data
	if r.crcOn {
		// Every byte of a piece is served (the pieces cover the listed size): its CRC is
		// folded in now, and only the zero padding is hashed as it is served.
		r.crc = crc32cCombine(r.crc, pd.crc, int64(len(data)))
	}
	r.cur = data
	r.pad = p.n - int64(len(data)) // shrunk (or deleted) while read: zeros, as the server sends
	if r.pad > 0 && !r.padded {
		r.padded = true
		r.s.padded++
		r.s.log.Debug("file shrank while read, zero-padded to its listed size", "path", r.m.path)
	}
	return nil
}

// skipRest takes the file's remaining pieces without serving them.
func (r *fileReader) skipRest(ctx context.Context) error {
	for r.got < r.m.npieces {
		if _, _, _, err := r.s.piece(ctx); err != nil {
			return err
		}
		r.got++
	}
	return nil
}

var zeros [32 << 10]byte

// next returns the next bytes to serve, at most max: the current piece's, or zeros. It
// hashes them and counts them as served.
func (r *fileReader) next(max int) ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	for r.left > 0 && len(r.cur) == 0 && r.pad == 0 {
		if r.got >= r.m.npieces {
			r.pad = r.left // cannot happen: the pieces cover the size
			break
		}
		if err := r.nextPiece(r.s.ctx); err != nil {
			r.err = err
			return nil, err
		}
	}
	if r.left == 0 {
		return nil, io.EOF
	}
	max = int(min(int64(max), r.left))
	var b []byte
	if len(r.cur) > 0 {
		b = r.cur[:min(max, len(r.cur))]
		r.cur = r.cur[len(b):]
	} else {
		b = zeros[:min(int64(len(zeros)), int64(max), r.pad)]
		r.pad -= int64(len(b))
		if r.crcOn {
			r.crc = crc32.Update(r.crc, pgformat.Castagnoli, b)
		}
	}
	r.left -= int64(len(b))
	if r.hash != nil {
		r.hash.Write(b)
	}
	r.s.done += int64(len(b))
	if r.s.onProgress != nil {
		r.s.onProgress(r.s.done)
	}
	return b, nil
}

func (r *fileReader) Read(p []byte) (int, error) {
	b, err := r.next(len(p))
	return copy(p, b), err
}

// ServesBuffers marks fileReader as a readerr.BufferServer: mux's copy uses its WriteTo.
func (r *fileReader) ServesBuffers() {}

// WriteTo writes the file's bytes to w from the fetched chunks themselves, without copying
// them into a buffer of the caller's first (io.Copy prefers it to w's ReadFrom; tarw.Writer
// passes a large write straight to its output).
func (r *fileReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		b, err := r.next(int(min(r.left, 1<<30)))
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// recheck handles the pages of data (from offset off of m) whose checksum failed when the
// reader checked them (badPages), as BASE_BACKUP does: each is read again once (a torn read
// of a page being written) and the new read replaces it; a page that still fails is a
// failure. It reports whether it replaced any bytes of data.
func (s *Source) recheck(m *member, segno uint32, off int64, data []byte, bad []int32) (changed bool) {
	bs := int(s.control.BlockSize)
	start := uint64(s.startLSN)
	for _, k := range bad {
		page := data[int(k)*bs : int(k+1)*bs]
		blk := uint32(off/int64(bs)) + uint32(k)
		blkno := blk + segno*s.control.RelsegSize
		again, err := s.readBinary(s.ctx, m.path, off+int64(int(k)*bs), int64(bs))
		if err != nil || len(again) < bs {
			return changed // gone or truncated meanwhile: as the server, stop checking this part
		}
		copy(page, again)
		changed = true
		if pageOK(page, blkno, start) {
			continue
		}
		s.checksumFailure(m, blk, page, blkno)
	}
	return changed
}

func (s *Source) checksumFailure(m *member, blk uint32, page []byte, blkno uint32) {
	name := "./" + m.path
	if m.ts != nil {
		name = m.ts.Location + "/" + m.rel
	}
	if s.failFiles == nil {
		s.failFiles = map[string]int{}
	}
	s.failFiles[name]++
	s.checksum.Failures++
	if s.failFiles[name] <= 5 {
		msg := fmt.Sprintf("checksum verification failed in file %q, block %d: calculated %X but expected %X",
			name, blk, pageChecksum(page, blkno), uint16(page[8])|uint16(page[9])<<8)
		s.checksum.NoteWarning(msg)
		s.log.Warn(msg)
	}
}

// End returns the end position, the manifest built from the files as sent and the WAL range,
// and the checksum failures.
func (s *Source) End(ctx context.Context) (source.End, error) {
	if err := s.finishMember(ctx); err != nil {
		return source.End{}, err
	}
	if s.stage != 3 || !s.stopped.Load() {
		return source.End{}, errors.New("sqlfetch: End before the last member")
	}
	s.releaseHeld()
	end := source.End{EndLSN: s.endLSN, Timeline: s.timeline}
	// The writer's timeline cannot change on a primary (a standby source is refused).
	if _, err := s.mb.Finish([]pgformat.WALRange{{Timeline: s.timeline, Start: pgformat.LSN(s.startLSN), End: pgformat.LSN(s.endLSN)}}); err != nil {
		return end, fmt.Errorf("build backup_manifest: %w", err)
	}
	end.Manifest = s.manifest.Bytes()
	s.fetch.mu.Lock()
	end.WireBytes = s.fetch.wire
	s.fetch.mu.Unlock()
	s.log.Info("files read over SQL", "files", s.mb.Files(), "bytes", end.WireBytes, "vanished", s.vanished,
		"zero_padded", s.padded, "jobs", s.cfg.Jobs, "memory_bound", s.cfg.MemoryBound())
	if s.checksum.Failures > 0 {
		ce := s.checksum
		for f, n := range s.failFiles {
			if n > 5 {
				ce.Warnings = append(ce.Warnings, fmt.Sprintf("file %q has a total of %d checksum verification failures", f, n))
			}
		}
		ce.Message = fmt.Sprintf("checksum verification failure during base backup (%d pages, verified by walweave)", ce.Failures)
		end.Checksum = &ce
	}
	return end, nil
}

// Close ends every session; a backup not stopped is aborted by the server when the session
// holding it ends.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel(errors.New("sqlfetch: closed"))
		}
		graceful := s.stopped.Load()
		conns := append([]*pgconn.PgConn{s.ctrl}, s.workers...)
		if !graceful {
			// Unblock whatever runs on them now (closing a socket is safe from any goroutine).
			for _, c := range conns {
				if c != nil {
					_ = c.Conn().Close()
				}
			}
		}
		if s.fetch != nil {
			s.fetch.wg.Wait()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The readers have stopped: nothing uses their connections any more. The control
		// session may still be in a call on the writer's goroutine when the backup did not
		// finish: its socket is closed, which is all the server needs to abort the backup.
		for _, c := range s.workers {
			if c != nil {
				_ = c.Close(ctx) // nothing to do for those taken over (s.wire)
			}
		}
		for _, w := range s.wire {
			_ = w.close()
		}
		if graceful && s.ctrl != nil {
			_ = s.ctrl.Close(ctx)
		}
	})
	return nil
}
