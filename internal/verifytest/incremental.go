package verifytest

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/walweave/walweave/pgformat"
)

// Chain17 builds small streams of a PostgreSQL 17 cluster for chain tests: a real
// pg_control (8 kB blocks, from pgformat's testdata), backup_label first (with INCREMENTAL
// FROM lines when From is set), the added files, pg_control, and a version 2 manifest of
// them. There is no WAL: check with Options.SkipWAL.
type Chain17 struct {
	Start, From pgformat.LSN
	// Algorithm is the manifest's checksum algorithm (default CRC32C).
	Algorithm string
	// Origin, when set, is written as backup_label's PAX comment, as walweave does.
	Origin pgformat.BackupOrigin
	names  []string
	files  map[string][]byte
}

// Block is one 8 kB block filled with b.
func Block(b byte) []byte { return bytes.Repeat([]byte{b}, 8192) }

// Blocks is the blocks filled with each byte of bs, one after the other.
func Blocks(bs string) []byte {
	var out []byte
	for i := 0; i < len(bs); i++ {
		out = append(out, Block(bs[i])...)
	}
	return out
}

// IncrementalFile returns an INCREMENTAL file of 8 kB blocks: the header (truncation block
// length trunc, the block numbers in order), then block i filled with fill[i].
func IncrementalFile(trunc uint32, order []uint32, fill string) []byte {
	h := pgformat.IncrementalHeader{TruncationBlockLength: trunc, BlockNumbers: order}
	return append(h.AppendTo(nil, 8192), Blocks(fill)...)
}

// Add adds a file.
func (b *Chain17) Add(name string, data []byte) {
	if b.files == nil {
		b.files = map[string][]byte{}
	}
	b.files[name] = data
	b.names = append(b.names, name)
}

// Origin17 is the origin of the cluster whose pg_control Control17 returns (its system
// identifier, PostgreSQL 17.6), as walweave writes it on backup_label.
func Origin17() (pgformat.BackupOrigin, error) {
	control, err := Control17()
	if err != nil {
		return pgformat.BackupOrigin{}, err
	}
	ctl, err := pgformat.ParseControlFile(control)
	if err != nil {
		return pgformat.BackupOrigin{}, err
	}
	return pgformat.BackupOrigin{SystemID: ctl.SystemIdentifier, ServerVersion: 170006}, nil
}

// Control17 returns PostgreSQL 17's pg_control from pgformat's testdata.
func Control17() ([]byte, error) {
	_, here, _, _ := runtime.Caller(0)
	return os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "pgformat", "testdata", "pg_control", "17"))
}

// Stream returns the backup as a stream (a manifest listing every file but itself).
func (b *Chain17) Stream() (*Stream, error) {
	control, err := Control17()
	if err != nil {
		return nil, err
	}
	ctl, err := pgformat.ParseControlFile(control)
	if err != nil {
		return nil, err
	}
	l := pgformat.BackupLabel{StartLSN: b.Start, CheckpointLSN: b.Start + 0x60, BackupMethod: "streamed",
		BackupFrom: "primary", StartTime: "2026-01-02 03:04:05 UTC", Label: "synthetic", StartTimeline: 1}
	if b.From != 0 {
		l.IncrementalFromLSN, l.IncrementalFromTLI = b.From, 1
	}
	s := &Stream{}
	var man bytes.Buffer
	mb, err := pgformat.NewManifestBuilder(&man, pgformat.ManifestOptions{SystemIdentifier: ctl.SystemIdentifier, Algorithm: b.Algorithm})
	if err != nil {
		return nil, err
	}
	addFile := func(name string, data []byte) {
		s.Members = append(s.Members, Member{Name: name, Type: tar.TypeReg, Mode: 0o600, Data: data})
		if err == nil {
			err = mb.AddFileContent(name, int64(len(data)), time.Unix(1e9, 0), bytes.NewReader(data))
		}
	}
	addFile("backup_label", l.Bytes())
	if b.Origin != (pgformat.BackupOrigin{}) {
		s.Members[len(s.Members)-1].Comment = b.Origin.String()
	}
	dirs := map[string]bool{"global": true, "pg_wal": true}
	var order []string
	for _, name := range b.names {
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			order = append([]string{d}, order...)
		}
	}
	for _, d := range append([]string{"global", "pg_wal"}, order...) {
		s.Members = append(s.Members, Member{Name: d, Type: tar.TypeDir, Mode: 0o700})
	}
	addFile("PG_VERSION", []byte("17\n"))
	for _, name := range b.names {
		addFile(name, b.files[name])
	}
	addFile("global/pg_control", control)
	if err != nil {
		return nil, err
	}
	if _, err := mb.Finish([]pgformat.WALRange{{Timeline: 1, Start: b.Start, End: b.Start + 0x1000}}); err != nil {
		return nil, err
	}
	s.Members = append(s.Members, Member{Name: "backup_manifest", Type: tar.TypeReg, Mode: 0o600, Data: man.Bytes()})
	return s, nil
}
