package mux

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/walweave/walweave/walstream/pgrepl"
)

// minServerVersion is the oldest server walweave backs up (BASE_BACKUP's 15+ protocol).
const minServerVersion = 150000

// maxManifestSize bounds the manifest held in memory (it is about 150 bytes per file).
const maxManifestSize = 1 << 30

// baseBackup is the Source that runs BASE_BACKUP on one replication connection (connection A)
// and reads the 15+ CopyOut stream: 'n' new archive, 'd' data, 'p' progress, 'm' manifest.
type baseBackup struct {
	conn *pgconn.PgConn
	cfg  *Config
	log  *slog.Logger

	ctx       context.Context // of Begin: cancelling it interrupts any read
	stopWatch func() bool

	tablespaces map[string]*Tablespace // by location; "" is the main directory
	next        *Archive               // announced by 'n', not yet returned
	cur         []byte                 // unread data of the current 'd' message
	archiveOpen bool                   // the current archive's data has not ended
	inManifest  bool
	copyDone    bool
	manifest    bytes.Buffer
	serverBytes int64 // from 'p' messages
	checksum    ChecksumError
	notices     []string
	onProgress  func(serverBytes int64)
}

// dialBaseBackup opens connection A and checks the server version.
func dialBaseBackup(ctx context.Context, connCfg *pgconn.Config, cfg *Config, log *slog.Logger) (*baseBackup, error) {
	b := &baseBackup{cfg: cfg, log: log, tablespaces: map[string]*Tablespace{}}
	connCfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { b.notice(n.Severity, n.Message) }
	conn, err := pgconn.ConnectConfig(ctx, connCfg)
	if err != nil {
		return nil, fmt.Errorf("mux: connect for the base backup: %w", err)
	}
	b.conn = conn
	if v := pgrepl.ServerVersionNum(conn); v < minServerVersion {
		conn.Close(context.Background())
		return nil, fmt.Errorf("mux: server version %s is not supported: walweave needs PostgreSQL 15 or newer (BASE_BACKUP's 15+ protocol); use pg_basebackup for older servers", conn.ParameterStatus("server_version"))
	}
	return b, nil
}

func (b *baseBackup) notice(severity, msg string) {
	if b.checksum.noteChecksumWarning(msg) {
		b.log.Warn("server: "+msg, "severity", severity)
		return
	}
	b.notices = append(b.notices, msg)
	b.log.Info("server: "+msg, "severity", severity)
}

// command builds the BASE_BACKUP command for the configuration.
func (b *baseBackup) command() string {
	opts := []string{
		"LABEL " + quoteLiteral(b.cfg.Label),
		"CHECKPOINT " + quoteLiteral(string(b.cfg.Checkpoint)),
		"WAIT false",
		"MANIFEST 'yes'",
		"MANIFEST_CHECKSUMS " + quoteLiteral(b.cfg.ManifestChecksums),
		"TARGET 'client'",
	}
	if b.cfg.Progress != nil {
		opts = append(opts, "PROGRESS")
	}
	if kb := maxRateKB(b.cfg.MaxRate); kb > 0 {
		opts = append(opts, "MAX_RATE "+strconv.FormatInt(kb, 10))
	}
	if b.cfg.NoVerifyChecksums {
		opts = append(opts, "VERIFY_CHECKSUMS false")
	}
	return "BASE_BACKUP (" + strings.Join(opts, ", ") + ")"
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// watch makes a cancelled ctx interrupt reads on the connection (the hot loop reads with
// context.Background() so that no per-message watcher is set up).
func (b *baseBackup) watch(ctx context.Context) {
	b.ctx = ctx
	b.stopWatch = context.AfterFunc(ctx, func() { _ = b.conn.Conn().SetDeadline(time.Unix(1, 0)) })
}

// recv returns the next protocol message, handling notices and parameter changes, and turns
// an ErrorResponse into an error.
func (b *baseBackup) recv() (pgproto3.BackendMessage, error) {
	for {
		msg, err := b.conn.ReceiveMessage(context.Background())
		if err != nil {
			if b.ctx != nil && b.ctx.Err() != nil {
				return nil, context.Cause(b.ctx)
			}
			return nil, fmt.Errorf("connection lost: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
			continue // notices went to OnNotice
		case *pgproto3.ErrorResponse:
			return nil, pgconn.ErrorResponseToPgError(m)
		}
		return msg, nil
	}
}

// readResultSet reads one RowDescription + DataRows + CommandComplete and returns the rows
// (copied).
func (b *baseBackup) readResultSet(what string) ([][][]byte, error) {
	var rows [][][]byte
	for {
		msg, err := b.recv()
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
		case *pgproto3.DataRow:
			row := make([][]byte, len(m.Values))
			for i, v := range m.Values {
				if v != nil {
					row[i] = append([]byte{}, v...)
				}
			}
			rows = append(rows, row)
		case *pgproto3.CommandComplete:
			return rows, nil
		default:
			return nil, fmt.Errorf("unexpected %T while reading the %s", msg, what)
		}
	}
}

// Begin sends BASE_BACKUP and reads the start position and the tablespace list; the copy
// stream is open when it returns.
func (b *baseBackup) Begin(ctx context.Context) (BackupStart, error) {
	b.watch(ctx)
	cmd := b.command()
	b.log.Debug("sending", "command", cmd)
	b.conn.Frontend().Send(&pgproto3.Query{String: cmd})
	if err := b.conn.Frontend().Flush(); err != nil {
		return BackupStart{}, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	rows, err := b.readResultSet("backup start position")
	if err != nil {
		return BackupStart{}, fmt.Errorf("start base backup: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 2 {
		return BackupStart{}, fmt.Errorf("start base backup: unexpected start position result %q", rows)
	}
	var st BackupStart
	if st.StartLSN, err = pgrepl.ParseLSN(string(rows[0][0])); err != nil {
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
		ts := &Tablespace{OID: string(r[0]), Location: string(r[1])}
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
	msg, err := b.recv()
	if err != nil {
		return st, fmt.Errorf("start base backup: %w", err)
	}
	if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
		return st, fmt.Errorf("start base backup: expected CopyOutResponse, got %T", msg)
	}
	return st, nil
}

// step reads the next CopyOut message and updates the state; 'd' data lands in b.cur.
func (b *baseBackup) step() error {
	msg, err := b.recv()
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return errors.New("empty CopyData message from the server")
		}
		switch m.Data[0] {
		case 'd':
			if b.inManifest {
				if b.manifest.Len()+len(m.Data)-1 > maxManifestSize {
					return fmt.Errorf("backup manifest larger than %d bytes", maxManifestSize)
				}
				b.manifest.Write(m.Data[1:])
				return nil
			}
			if !b.archiveOpen {
				return errors.New("archive data from the server before any archive started")
			}
			b.cur = m.Data[1:]
		case 'p':
			if len(m.Data) != 9 {
				return fmt.Errorf("malformed progress message (%d bytes)", len(m.Data))
			}
			b.serverBytes = int64(binary.BigEndian.Uint64(m.Data[1:]))
			if b.onProgress != nil {
				b.onProgress(b.serverBytes)
			}
		case 'n':
			name, rest, ok := bytes.Cut(m.Data[1:], []byte{0})
			path, _, ok2 := bytes.Cut(rest, []byte{0})
			if !ok || !ok2 {
				return errors.New("malformed new-archive message from the server")
			}
			ts, known := b.tablespaces[string(path)]
			if !known {
				return fmt.Errorf("server started archive %q for tablespace location %q, which was not in its tablespace list", name, path)
			}
			a := &Archive{Name: string(name)}
			if string(path) != "" {
				a.Tablespace = ts
			}
			if strings.HasSuffix(a.Name, ".gz") || strings.HasSuffix(a.Name, ".lz4") || strings.HasSuffix(a.Name, ".zst") {
				return fmt.Errorf("server sent a compressed archive %q; walweave does not ask for server compression", a.Name)
			}
			b.next = a
			b.archiveOpen = false
		case 'm':
			b.inManifest = true
			b.archiveOpen = false
		default:
			return fmt.Errorf("unknown CopyData message type %q from the server", m.Data[0])
		}
	case *pgproto3.CopyDone:
		b.copyDone = true
		b.archiveOpen = false
	default:
		return fmt.Errorf("unexpected %T during the copy", msg)
	}
	return nil
}

// NextArchive returns the next archive announced by the server.
func (b *baseBackup) NextArchive(ctx context.Context) (Archive, error) {
	if b.archiveOpen {
		return Archive{}, errors.New("mux: NextArchive called before the previous archive was read to its end")
	}
	for b.next == nil {
		if b.inManifest || b.copyDone {
			return Archive{}, io.EOF
		}
		if err := b.step(); err != nil {
			return Archive{}, err
		}
		if len(b.cur) > 0 {
			return Archive{}, errors.New("archive data from the server before any archive started")
		}
	}
	a := *b.next
	b.next = nil
	b.archiveOpen = true
	a.Data = (*archiveReader)(b)
	return a, nil
}

// archiveReader reads the current archive's bytes; io.EOF when the server moves on.
type archiveReader baseBackup

func (r *archiveReader) Read(p []byte) (int, error) {
	b := (*baseBackup)(r)
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
func (b *baseBackup) End(ctx context.Context) (BackupEnd, error) {
	for !b.copyDone {
		if b.next != nil {
			return BackupEnd{}, fmt.Errorf("archive %q was not read", b.next.Name)
		}
		if err := b.step(); err != nil {
			return BackupEnd{}, fmt.Errorf("read backup manifest: %w", err)
		}
		if len(b.cur) > 0 {
			return BackupEnd{}, errors.New("archive data after the archives ended")
		}
	}
	var end BackupEnd
	if !b.inManifest {
		return end, errors.New("the server sent no backup manifest")
	}
	end.Manifest = b.manifest.Bytes()
	rows, err := b.readResultSet("backup end position")
	if err != nil {
		return end, fmt.Errorf("finish base backup: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 2 {
		return end, fmt.Errorf("finish base backup: unexpected end position result %q", rows)
	}
	if end.EndLSN, err = pgrepl.ParseLSN(string(rows[0][0])); err != nil {
		return end, fmt.Errorf("finish base backup: %w", err)
	}
	tli, err := strconv.ParseUint(string(rows[0][1]), 10, 32)
	if err != nil {
		return end, fmt.Errorf("finish base backup: timeline %q: %w", rows[0][1], err)
	}
	end.Timeline = uint32(tli)
	// CommandComplete BASE_BACKUP, or ERROR XX001 for checksum failures; then ReadyForQuery.
	for {
		msg, err := b.recv()
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
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return end, nil
		}
	}
}

// Close closes connection A; a backup still running on the server is aborted by it.
func (b *baseBackup) Close() error {
	if b.stopWatch != nil {
		b.stopWatch()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.conn.Close(ctx)
}
