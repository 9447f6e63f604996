// Package basebackup is the BASE_BACKUP data source: it runs BASE_BACKUP on one replication
// connection (PostgreSQL 15+), decodes its CopyOut stream ('n' new archive, 'd' data, 'p'
// progress, 'm' manifest), decompresses server-compressed archives on the fly, and hands the
// archives' tar members out one at a time (source.Source).
//
// pgconn connects and authenticates and runs the commands before BASE_BACKUP; Start then takes
// the socket over (pgconn.PgConn.Hijack) and reads the stream through a pgrepl.MessageReader,
// whose 1 MiB buffer takes in one read what pgproto3's 8 KiB reader needs several reads for, and
// a pgrepl.BatchedConn, which has the kernel wake the reader once per MiB rather than per 8 KiB
// segment. CopyData bodies are slices of that buffer, copied once, into the caller's buffer.
package basebackup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/klauspost/compress/zstd"
	"github.com/walweave/walweave/internal/lz4frame"
	"github.com/walweave/walweave/internal/pgerr"
	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/readerr"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/source"
	"github.com/walweave/walweave/tarw"
)

// maxManifestSize bounds the manifest held in memory (it is about 150 bytes per file).
const maxManifestSize = 1 << 30

// readBufferSize is connection A's read buffer: one read takes what the socket holds.
const readBufferSize = 1 << 20

// maxMessageSize bounds one message on connection A; the server sends CopyData of at most
// 32 KiB (or BLCKSZ) and short result rows.
const maxMessageSize = 64 << 20

// Config is what BASE_BACKUP is asked for.
type Config struct {
	// ConnConfig is a physical replication connection's configuration (pgrepl.ParseConfig).
	ConnConfig *pgconn.Config
	Label      string
	Checkpoint source.Checkpoint // "" means spread
	// MaxRate limits the server's send rate in bytes per second (0 = unlimited); see MaxRateKB.
	MaxRate           int64
	NoVerifyChecksums bool
	ManifestChecksums string // NONE, CRC32C, SHA224, SHA256, SHA384 or SHA512
	// Compression is the server compression as ParseCompression accepts it ("" for none).
	Compression string
	// Progress asks the server to estimate the backup's size first (BASE_BACKUP's PROGRESS).
	Progress bool
	// IncrementalFrom, when not nil, makes the backup incremental (PostgreSQL 17+): the prior
	// backup's backup_manifest, uploaded byte for byte before BASE_BACKUP (INCREMENTAL).
	IncrementalFrom []byte
	// ProgressTimeout fails the copy when the server sends nothing for that long once the copy
	// stream is open (from the end of the start checkpoint to the end of the command): a
	// stopped walsender or a proxy that holds the connection. 0 means
	// pgrepl.DefaultProgressTimeout, negative turns it off (pgrepl.ProgressTimeout). The
	// checkpoint itself sends nothing and is not bounded by it.
	ProgressTimeout time.Duration
	Logger          *slog.Logger // nil logs nothing
}

// Source is the BASE_BACKUP source.
type Source struct {
	cfg  Config
	log  *slog.Logger
	conn *pgconn.PgConn // until Start
	nc   net.Conn       // from Start: the socket, written to directly
	bc   *pgrepl.BatchedConn
	rd   *pgrepl.MessageReader

	ctx       context.Context // of Start: cancelling it interrupts any read
	stopWatch func() bool

	tablespaces  map[string]*source.Tablespace // by location; "" is the main directory
	next         *archive                      // announced by 'n', not yet returned
	cur          []byte                        // unread data of the current 'd' message
	archiveOpen  bool                          // the current archive's data has not ended
	inManifest   bool
	copyDone     bool
	manifest     bytes.Buffer
	serverBytes  int64 // from 'p' messages
	archiveBytes int64 // archive data received
	checksum     source.ChecksumError
	notices      []string
	onProgress   func(serverBytes int64)
	dec          *archiveDecoder // reused for every compressed archive
	tr           *tarw.Reader
	curArchive   *archive
	running      bool // BASE_BACKUP was sent and its ReadyForQuery not read yet
}

// archive is one server tar archive.
type archive struct {
	name       string             // e.g. "16384.tar" or "base.tar"
	tablespace *source.Tablespace // nil for the main data directory
	compressed bool               // the server compresses it
}

// New returns a BASE_BACKUP source; nothing connects before Open.
func New(cfg Config) *Source {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, log: log, tablespaces: map[string]*source.Tablespace{}}
}

// Open connects, checks the server version and reads the system identifier and the data
// directory's mode.
func (b *Source) Open(ctx context.Context) (source.Info, error) {
	if _, err := b.cfg.Checkpoint.Normalize(); err != nil {
		return source.Info{}, fmt.Errorf("basebackup: %w", err)
	}
	connCfg := b.cfg.ConnConfig.Copy()
	connCfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { b.notice(n.Severity, n.Message) }
	conn, err := pgconn.ConnectConfig(ctx, connCfg)
	if err != nil {
		return source.Info{}, fmt.Errorf("connect for the base backup: %w", pgerr.On(pgerr.Replication, err))
	}
	b.conn = conn
	info := source.Info{ServerVersion: pgrepl.ServerVersionNum(conn)}
	if err := pgerr.CheckVersion(info.ServerVersion, conn.ParameterStatus("server_version")); err != nil {
		return info, err
	}
	sys, err := pgrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return info, err
	}
	info.SystemID = sys.SystemID
	mode, err := pgrepl.Show(ctx, conn, "data_directory_mode")
	if err != nil {
		return info, err
	}
	info.GroupAccess = mode == "0750"
	if b.cfg.IncrementalFrom != nil {
		if err := b.prepareIncremental(ctx, conn, info.ServerVersion, info.SystemID); err != nil {
			return info, err
		}
	}
	return info, nil
}

func (b *Source) notice(severity, msg string) {
	if b.checksum.NoteWarning(msg) {
		b.log.Warn("server: "+msg, "severity", severity)
		return
	}
	b.notices = append(b.notices, msg)
	b.log.Info("server: "+msg, "severity", severity)
}

// command builds the BASE_BACKUP command for the configuration.
func (b *Source) command() string {
	checkpoint, err := b.cfg.Checkpoint.Normalize()
	if err != nil {
		checkpoint = b.cfg.Checkpoint // Open refused it already
	}
	opts := []string{
		"LABEL " + quoteLiteral(b.cfg.Label),
		"CHECKPOINT " + quoteLiteral(string(checkpoint)),
		"WAIT false",
		"MANIFEST 'yes'",
		"MANIFEST_CHECKSUMS " + quoteLiteral(b.cfg.ManifestChecksums),
		"TARGET 'client'",
	}
	if b.cfg.Progress {
		opts = append(opts, "PROGRESS")
	}
	if b.cfg.IncrementalFrom != nil {
		opts = append(opts, "INCREMENTAL")
	}
	if kb := MaxRateKB(b.cfg.MaxRate); kb > 0 {
		opts = append(opts, "MAX_RATE "+strconv.FormatInt(kb, 10))
	}
	if b.cfg.NoVerifyChecksums {
		opts = append(opts, "VERIFY_CHECKSUMS false")
	}
	if method, detail, _ := ParseCompression(b.cfg.Compression); method != "" {
		opts = append(opts, "COMPRESSION "+quoteLiteral(method))
		if detail != "" {
			opts = append(opts, "COMPRESSION_DETAIL "+quoteLiteral(detail))
		}
	}
	return "BASE_BACKUP (" + strings.Join(opts, ", ") + ")"
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// watch makes a cancelled ctx interrupt reads on the connection (the hot loop reads with
// context.Background() so that no per-message watcher is set up).
func (b *Source) watch(ctx context.Context) {
	b.ctx = ctx
	nc := b.conn.Conn()
	b.stopWatch = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
}

// Backend message types read on connection A after Begin took it over.
const (
	msgCopyData        = 'd'
	msgCopyDone        = 'c'
	msgCopyOutResponse = 'H'
	msgRowDescription  = 'T'
	msgDataRow         = 'D'
	msgCommandComplete = 'C'
	msgReadyForQuery   = 'Z'
	msgErrorResponse   = 'E'
	msgNoticeResponse  = 'N'
	msgParameterStatus = 'S'
	msgNotification    = 'A'
)

// messageNames names the message types for errors.
var messageNames = map[byte]string{
	msgCopyData: "CopyData", msgCopyDone: "CopyDone", msgCopyOutResponse: "CopyOutResponse",
	msgRowDescription: "RowDescription", msgDataRow: "DataRow", msgCommandComplete: "CommandComplete",
	msgReadyForQuery: "ReadyForQuery", 'G': "CopyInResponse", 'W': "CopyBothResponse", 'I': "EmptyQueryResponse",
}

func messageName(typ byte) string {
	if n, ok := messageNames[typ]; ok {
		return n
	}
	return fmt.Sprintf("message type %q", typ)
}

// recv returns the next protocol message's type and body (valid until the next recv), passing
// notices to the logger, skipping parameter changes, and turning an ErrorResponse into a
// *pgconn.PgError.
func (b *Source) recv() (byte, []byte, error) {
	for {
		typ, body, err := b.rd.Next()
		if err != nil {
			if b.ctx != nil && b.ctx.Err() != nil {
				return 0, nil, context.Cause(b.ctx)
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			var stalled *pgrepl.StalledError
			switch {
			case errors.As(err, &stalled):
				return 0, nil, err
			case pgrepl.TimedOut(err):
				return 0, nil, fmt.Errorf("connection lost: %w (%v); check the network to the server (and a firewall or proxy between), then run the backup again", pgrepl.ErrConnTimedOut, err)
			}
			return 0, nil, fmt.Errorf("connection lost: %w", err)
		}
		switch typ {
		case msgNoticeResponse:
			var n pgproto3.NoticeResponse
			if err := n.Decode(body); err != nil {
				return 0, nil, fmt.Errorf("malformed notice from the server: %w", err)
			}
			b.notice(n.Severity, n.Message)
			continue
		case msgParameterStatus, msgNotification:
			continue
		case msgErrorResponse:
			var e pgproto3.ErrorResponse
			if err := e.Decode(body); err != nil {
				return 0, nil, fmt.Errorf("malformed error from the server: %w", err)
			}
			pgErr := pgconn.ErrorResponseToPgError(&e)
			if pgErr.Code == "57P01" {
				return 0, nil, fmt.Errorf("the base backup's walsender was terminated (pg_terminate_backend or a server shutdown): %w; run the backup again", pgErr)
			}
			return 0, nil, pgErr
		}
		return typ, body, nil
	}
}

// readResultSet reads one RowDescription + DataRows + CommandComplete and returns the rows
// (copied).
func (b *Source) readResultSet(what string) ([][][]byte, error) {
	var rows [][][]byte
	var dr pgproto3.DataRow
	for {
		typ, body, err := b.recv()
		if err != nil {
			return nil, err
		}
		switch typ {
		case msgRowDescription:
		case msgDataRow:
			if err := dr.Decode(body); err != nil {
				return nil, fmt.Errorf("malformed row in the %s: %w", what, err)
			}
			row := make([][]byte, len(dr.Values))
			for i, v := range dr.Values {
				if v != nil {
					row[i] = append([]byte{}, v...)
				}
			}
			rows = append(rows, row)
		case msgCommandComplete:
			return rows, nil
		default:
			return nil, fmt.Errorf("unexpected %s while reading the %s", messageName(typ), what)
		}
	}
}

// Start sends BASE_BACKUP and reads the start position and the tablespace list; the copy
// stream is open when it returns.
func (b *Source) Start(ctx context.Context, progress func(bytesDone int64)) (source.Start, error) {
	b.onProgress = progress
	b.watch(ctx)
	if err := b.takeOver(ctx); err != nil {
		return source.Start{}, err
	}
	cmd := b.command()
	b.log.Debug("sending", "command", cmd)
	b.running = true
	query, err := (&pgproto3.Query{String: cmd}).Encode(nil)
	if err != nil {
		return source.Start{}, fmt.Errorf("encode BASE_BACKUP: %w", err)
	}
	if _, err := b.nc.Write(query); err != nil {
		if ctx.Err() != nil {
			return source.Start{}, context.Cause(ctx)
		}
		return source.Start{}, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	rows, err := b.readResultSet("backup start position")
	if err != nil {
		if b.cfg.IncrementalFrom != nil {
			err = classifyIncremental(err, false)
		}
		return source.Start{}, fmt.Errorf("start base backup: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 2 {
		return source.Start{}, fmt.Errorf("start base backup: unexpected start position result %q", rows)
	}
	var st source.Start
	if st.StartLSN, err = pgformat.ParseLSN(string(rows[0][0])); err != nil {
		return st, fmt.Errorf("start base backup: %w", err)
	}
	tli, err := strconv.ParseUint(string(rows[0][1]), 10, 32)
	if err != nil {
		return st, fmt.Errorf("start base backup: timeline %q: %w", rows[0][1], err)
	}
	st.Timeline = uint32(tli)
	rows, err = b.readResultSet("tablespace list")
	if err != nil {
		return st, fmt.Errorf("start base backup: %w", err)
	}
	for _, r := range rows {
		if len(r) < 3 {
			return st, fmt.Errorf("start base backup: unexpected tablespace row %q", r)
		}
		ts := &source.Tablespace{OID: string(r[0]), Location: string(r[1])}
		if r[2] != nil {
			kb, _ := strconv.ParseInt(string(r[2]), 10, 64)
			ts.Size = kb * 1024
			st.TotalSize += ts.Size
		}
		if r[0] == nil { // the main data directory, always last
			b.tablespaces[""] = ts
			continue
		}
		b.tablespaces[ts.Location] = ts
		st.Tablespaces = append(st.Tablespaces, *ts)
	}
	typ, _, err := b.recv()
	if err != nil {
		return st, fmt.Errorf("start base backup: %w", err)
	}
	if typ != msgCopyOutResponse {
		return st, fmt.Errorf("start base backup: expected CopyOutResponse, got %s", messageName(typ))
	}
	if !b.bc.Batch(true) {
		b.log.Debug("reading the copy stream without a socket low-water mark")
	}
	b.bc.SetStallTimeout(b.stallTimeout())
	return st, nil
}

// takeOver hijacks connection A's socket from pgconn for the BASE_BACKUP stream.
//
// pgconn may have left a background reader blocked in a Read of this socket (it starts one
// when a write takes longer than 15 ms, and stopping it only takes effect after its next
// Read); that Read would take the first bytes of BASE_BACKUP's reply. SyncConn returns once no
// such reader is left and nothing is buffered (sqlfetch's takeOver says more, and its
// TestTakeOverAfterSlowWrite shows the misframed stream without it). It pings the server to
// end that Read, and a physical walsender refuses the ping (an SQL command, 0A000), but the
// error reply ends the Read as well: the next call finds the reader stopped.
func (b *Source) takeOver(ctx context.Context) error {
	var err error
	for range 3 {
		var pgErr *pgconn.PgError
		if err = b.conn.SyncConn(ctx); err == nil || !errors.As(err, &pgErr) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("take over the base backup connection: stop pgconn's background reader: %w", err)
	}
	hc, err := b.conn.Hijack()
	if err != nil {
		return fmt.Errorf("take over the base backup connection: %w", err)
	}
	if n := hc.Frontend.ReadBufferLen(); n != 0 {
		hc.Conn.Close()
		return fmt.Errorf("take over the base backup connection: %d unexpected bytes from the server after the last reply", n)
	}
	b.nc = hc.Conn
	b.bc = pgrepl.NewBatchedConn(b.ctx, hc.Conn)
	b.rd = pgrepl.NewMessageReader(b.bc, readBufferSize)
	b.rd.SetMaxMessageSize(maxMessageSize)
	return nil
}

// step reads the next CopyOut message and updates the state; 'd' data lands in b.cur.
func (b *Source) step() error {
	typ, data, err := b.recv()
	if err != nil {
		return err
	}
	switch typ {
	case msgCopyData:
		if len(data) == 0 {
			return errors.New("empty CopyData message from the server")
		}
		switch data[0] {
		case 'd':
			if b.inManifest {
				if b.manifest.Len()+len(data)-1 > maxManifestSize {
					return fmt.Errorf("backup manifest larger than %d bytes", maxManifestSize)
				}
				b.manifest.Write(data[1:])
				return nil
			}
			if !b.archiveOpen {
				return errors.New("archive data from the server before any archive started")
			}
			b.cur = data[1:]
			b.archiveBytes += int64(len(b.cur))
		case 'p':
			if len(data) != 9 {
				return fmt.Errorf("malformed progress message (%d bytes)", len(data))
			}
			b.serverBytes = int64(binary.BigEndian.Uint64(data[1:]))
			if b.onProgress != nil {
				b.onProgress(b.serverBytes)
			}
		case 'n':
			name, rest, ok := bytes.Cut(data[1:], []byte{0})
			path, _, ok2 := bytes.Cut(rest, []byte{0})
			if !ok || !ok2 {
				return errors.New("malformed new-archive message from the server")
			}
			ts, known := b.tablespaces[string(path)]
			if !known {
				return fmt.Errorf("server started archive %q for tablespace location %q, which was not in its tablespace list", name, path)
			}
			a := &archive{name: string(name)}
			if string(path) != "" {
				a.tablespace = ts
			}
			method, _, _ := ParseCompression(b.cfg.Compression)
			if got := archiveCompression(a.name); got != method {
				if method == "" {
					return fmt.Errorf("server sent a compressed archive %q although walweave did not ask for server compression", a.name)
				}
				return fmt.Errorf("server sent archive %q, not the %s-compressed archive walweave asked for", a.name, method)
			}
			a.compressed = method != ""
			b.next = a
			b.archiveOpen = false
		case 'm':
			b.inManifest = true
			b.archiveOpen = false
		default:
			return fmt.Errorf("unknown CopyData message type %q from the server", data[0])
		}
	case msgCopyDone:
		b.copyDone = true
		b.archiveOpen = false
		b.bc.Batch(false)
	default:
		return fmt.Errorf("unexpected %s during the copy", messageName(typ))
	}
	return nil
}

// nextArchive returns the next archive announced by the server and its data, or io.EOF.
func (b *Source) nextArchive() (*archive, io.Reader, error) {
	if b.archiveOpen {
		return nil, nil, errors.New("next archive asked for before the previous archive was read to its end")
	}
	for b.next == nil {
		if b.inManifest || b.copyDone {
			return nil, nil, io.EOF
		}
		if err := b.step(); err != nil {
			return nil, nil, err
		}
		if len(b.cur) > 0 {
			return nil, nil, errors.New("archive data from the server before any archive started")
		}
	}
	a := b.next
	b.next = nil
	b.archiveOpen = true
	var data io.Reader = (*archiveReader)(b)
	if a.compressed {
		if b.dec == nil {
			method, _, _ := ParseCompression(b.cfg.Compression)
			dec, err := newArchiveDecoder(method)
			if err != nil {
				return nil, nil, err
			}
			b.dec = dec
		}
		if err := b.dec.reset(a.name, (*archiveReader)(b)); err != nil {
			return nil, nil, err
		}
		data = b.dec
	}
	return a, data, nil
}

// Next returns the next member of the server's archives: every tablespace's, then the main
// directory's (backup_label first, global/pg_control last). A failure to read the server's
// data is returned as is; a malformed archive names it.
func (b *Source) Next(ctx context.Context) (source.Member, error) {
	for {
		if b.tr == nil {
			a, data, err := b.nextArchive()
			if err != nil {
				return source.Member{}, err
			}
			b.log.Debug("archive", "name", a.name)
			b.curArchive = a
			b.tr = tarw.NewReader(data)
			b.tr.SetArchiveName(a.name)
		}
		m, err := b.tr.Next()
		if err == io.EOF {
			b.tr = nil
			continue
		}
		if err != nil {
			return source.Member{}, fmt.Errorf("read %s: %w", b.curArchive.name, err)
		}
		return source.Member{Header: m, Tablespace: b.curArchive.tablespace, Data: b.tr}, nil
	}
}

// archiveCompression names the compression of a server archive by its name's suffix
// ("" for a plain .tar).
func archiveCompression(name string) string {
	switch {
	case strings.HasSuffix(name, ".lz4"):
		return "lz4"
	case strings.HasSuffix(name, ".gz"):
		return "gzip"
	case strings.HasSuffix(name, ".zst"):
		return "zstd"
	}
	return ""
}

// archiveDecoder decompresses one server archive (an LZ4 frame or a zstd frame) as it is
// read, telling errors of the compressed data apart from errors of the connection. One
// decoder serves every archive of the backup: its buffers (and zstd's window) are allocated
// once.
type archiveDecoder struct {
	name string
	src  *readerr.Reader // the archive reader under the decompressor
	zr   decoder
}

// decoder is a streaming decompressor that can start over on another input.
type decoder interface {
	io.Reader
	Reset(r io.Reader) error
}

func newArchiveDecoder(method string) (*archiveDecoder, error) {
	switch method {
	case "lz4":
		return &archiveDecoder{zr: lz4Decoder{lz4frame.NewReader(nil)}}, nil
	case "zstd":
		// Concurrency 1: the decoder decodes on the caller's goroutine and starts none of
		// its own, so it needs no Close (which could race with a Read in progress); zstd
		// decodes at about 1 GB/s per core, faster than a link that needs compression. The server's window is at most 8 MiB
		// at level 22, 128 MiB with long (windowLog 27), both below the default limit.
		zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		return &archiveDecoder{zr: zr}, nil
	}
	return nil, fmt.Errorf("no decoder for server compression %q", method)
}

func (z *archiveDecoder) reset(name string, r io.Reader) error {
	z.name = name
	z.src = &readerr.Reader{R: r}
	if err := z.zr.Reset(z.src); err != nil {
		return z.wrap(err)
	}
	return nil
}

func (z *archiveDecoder) wrap(err error) error {
	if err != nil && err != io.EOF && z.src.Err == nil {
		return fmt.Errorf("decompress the server's archive %s: %w", z.name, err)
	}
	if z.src.Err != nil && err != nil && err != io.EOF {
		return z.src.Err // the connection's own error, unchanged
	}
	return err
}

func (z *archiveDecoder) Read(p []byte) (int, error) {
	n, err := z.zr.Read(p)
	return n, z.wrap(err)
}

type lz4Decoder struct{ *lz4frame.Reader }

func (d lz4Decoder) Reset(r io.Reader) error { d.Reader.Reset(r); return nil }

// archiveReader reads the current archive's bytes; io.EOF when the server moves on.
type archiveReader Source

func (r *archiveReader) Read(p []byte) (int, error) {
	b := (*Source)(r)
	for len(b.cur) == 0 {
		if !b.archiveOpen {
			return 0, io.EOF
		}
		if err := b.step(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

// End reads the manifest, the end position and the command's outcome.
func (b *Source) End(ctx context.Context) (source.End, error) {
	if b.tr != nil {
		return source.End{}, fmt.Errorf("archive %q was not read to its end", b.curArchive.name)
	}
	for !b.copyDone {
		if b.next != nil {
			return source.End{}, fmt.Errorf("archive %q was not read", b.next.name)
		}
		if err := b.step(); err != nil {
			return source.End{}, fmt.Errorf("read backup manifest: %w", err)
		}
		if len(b.cur) > 0 {
			return source.End{}, errors.New("archive data after the archives ended")
		}
	}
	var end source.End
	if !b.inManifest {
		return end, errors.New("the server sent no backup manifest")
	}
	end.Manifest = b.manifest.Bytes()
	end.WireBytes = b.archiveBytes
	rows, err := b.readResultSet("backup end position")
	if err != nil {
		return end, fmt.Errorf("finish base backup: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 2 {
		return end, fmt.Errorf("finish base backup: unexpected end position result %q", rows)
	}
	if end.EndLSN, err = pgformat.ParseLSN(string(rows[0][0])); err != nil {
		return end, fmt.Errorf("finish base backup: %w", err)
	}
	tli, err := strconv.ParseUint(string(rows[0][1]), 10, 32)
	if err != nil {
		return end, fmt.Errorf("finish base backup: timeline %q: %w", rows[0][1], err)
	}
	end.Timeline = uint32(tli)
	// CommandComplete BASE_BACKUP, or ERROR XX001 for checksum failures; then ReadyForQuery.
	for {
		typ, _, err := b.recv()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "XX001" {
			ce := b.checksum
			ce.Message = pgErr.Message
			end.Checksum = &ce
			continue
		}
		if err != nil {
			return end, fmt.Errorf("finish base backup: %w", err)
		}
		if typ == msgReadyForQuery {
			b.running = false
			b.bc.SetStallTimeout(0)
			return end, nil
		}
	}
}

// cancelTimeout bounds the cancel request Close sends for a backup still running.
const cancelTimeout = 2 * time.Second

// Close closes the connection. A backup still running on the server gets a cancel request
// first: a walsender waiting for the start checkpoint notices neither a closed socket nor a
// dead network before the checkpoint ends (minutes with a spread checkpoint), and would hold
// its walsender slot until then.
func (b *Source) Close() error {
	if b.stopWatch != nil {
		b.stopWatch()
	}
	if b.running && b.conn != nil {
		b.running = false
		if err := pgrepl.CancelBackend(b.conn, cancelTimeout); err != nil {
			b.log.Debug("cancel request for the base backup", "err", err)
		} else {
			b.log.Debug("cancel request sent for the base backup", "pid", b.conn.PID())
		}
	}
	if b.nc == nil {
		if b.conn == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return b.conn.Close(ctx)
	}
	// As pgconn closes: a Terminate message if the socket takes it at once, then close.
	_ = b.nc.SetWriteDeadline(time.Now().Add(time.Second))
	terminate, _ := (&pgproto3.Terminate{}).Encode(nil)
	_, _ = b.nc.Write(terminate)
	return b.nc.Close()
}

// stallTimeout is Config.ProgressTimeout as it applies (0: off).
func (b *Source) stallTimeout() time.Duration { return pgrepl.ProgressTimeout(b.cfg.ProgressTimeout) }
