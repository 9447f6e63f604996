package verifytest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/walweave/walweave/pgformat"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

// Backup is a pg_basebackup -Ft -X fetch output directory.
type Backup struct {
	Dir string
	// TablespaceOID and TablespaceLocation describe the tablespace "ts1" made for it.
	TablespaceOID, TablespaceLocation string
}

// TakeBackup creates a tablespace ts1 with a table ts_table (1234 rows) and a table in the
// default tablespace, then runs pg_basebackup -Ft -X fetch -c fast
// --manifest-checksums=CRC32C while WAL switches happen, so that the backup's WAL spans
// several segments.
func TakeBackup(t testing.TB, c *pgtest.Cluster) *Backup {
	t.Helper()
	oid, loc := c.CreateTablespace(t, "ts1")
	c.Exec(t, "create table ts_table tablespace ts1 as select g as i, md5(g::text) as t from generate_series(1, 1234) g")
	c.Exec(t, "create table base_table as select g as i from generate_series(1, 5000) g")
	dir, err := c.NewDir("bb")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// pg_basebackup, or the same BASE_BACKUP sent by pgtest when the installed pg_basebackup
	// is older than the server (the version matrix).
	done := make(chan error, 1)
	go func() {
		done <- c.TarBackup(ctx, out, pgtest.TarBackupOptions{WAL: true, MaxRateKB: 16 << 10, ManifestChecksums: "CRC32C"})
	}()
	// Once the server streams files, switch WAL segments twice with some WAL in between.
	switched := false
	for !switched {
		select {
		case err := <-done:
			t.Fatalf("pg_basebackup ended before the WAL switches: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		phase, _ := c.QueryValueDB(ctx, "postgres", "select coalesce((select phase from pg_stat_progress_basebackup limit 1), '')")
		if phase == "streaming database files" {
			for i := 0; i < 2; i++ {
				c.Exec(t, "insert into base_table select g from generate_series(1, 20000) g")
				c.Exec(t, "select pg_switch_wal()")
			}
			switched = true
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("pg_basebackup: %v", err)
	}
	return &Backup{Dir: out, TablespaceOID: oid, TablespaceLocation: loc}
}

// ReadTar reads every member of a tar file into memory, names normalised.
func ReadTar(path string) ([]Member, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Member
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		out = append(out, Member{Name: name, Type: h.Typeflag, Mode: h.Mode, Linkname: h.Linkname, Data: data})
	}
}

var lsnRE = regexp.MustCompile(`"End-LSN": "([0-9A-F]+/[0-9A-F]+)"`)

// FromBackup builds a walweave-contract stream from a pg_basebackup -Ft -X fetch
// directory: backup_label first, the data of base.tar (global/pg_control last) with the first
// WAL segment woven in early, each tablespace's members re-rooted under pg_tblspc/<oid>/
// (its directory entry made a directory), the other WAL segments, backup_manifest last. As
// walweave does not ask for a tablespace map, tablespace_map is left out (and its manifest
// line removed, the manifest checksum recomputed). postgresql.auto.conf gets walweave's
// tablespace lines, and the last segment is zero-padded after the end LSN.
func FromBackup(b *Backup) (*Stream, error) {
	base, err := ReadTar(filepath.Join(b.Dir, "base.tar"))
	if err != nil {
		return nil, err
	}
	manifest, err := os.ReadFile(filepath.Join(b.Dir, "backup_manifest"))
	if err != nil {
		return nil, err
	}
	tsTars, _ := filepath.Glob(filepath.Join(b.Dir, "[0-9]*.tar"))
	sort.Strings(tsTars)
	type ts struct {
		oid, loc string
		members  []Member
	}
	var spaces []ts
	var mapLines []string
	for _, m := range base {
		if m.Name == "tablespace_map" {
			mapLines = strings.Split(strings.TrimSpace(string(m.Data)), "\n")
		}
	}
	for _, p := range tsTars {
		oid := strings.TrimSuffix(filepath.Base(p), ".tar")
		ms, err := ReadTar(p)
		if err != nil {
			return nil, err
		}
		loc := ""
		for _, l := range mapLines {
			if o, rest, ok := strings.Cut(l, " "); ok && o == oid {
				loc = rest
			}
		}
		spaces = append(spaces, ts{oid, loc, ms})
	}
	s := &Stream{}
	var segs []Member
	var label *Member
	for i := range base {
		m := base[i]
		switch {
		case m.Name == "backup_label":
			label = &base[i]
			continue
		case m.Name == "tablespace_map":
			continue
		case segRE.MatchString(m.Name):
			segs = append(segs, m)
			continue
		case m.Type == tar.TypeSymlink && strings.HasPrefix(m.Name, "pg_tblspc/"):
			m = Member{Name: m.Name, Type: tar.TypeDir, Mode: 0o700}
		case m.Name == "postgresql.auto.conf":
			var add strings.Builder
			for _, sp := range spaces {
				fmt.Fprintf(&add, "# walweave: tablespace %s was at %s\n", sp.oid, sp.loc)
			}
			if len(spaces) > 0 {
				add.WriteString("allow_in_place_tablespaces = on\n")
			}
			m.Data = append(append([]byte(nil), m.Data...), add.String()...)
		}
		s.Members = append(s.Members, m)
	}
	if label == nil || len(segs) == 0 {
		return nil, errors.New("verifytest: base.tar has no backup_label or no WAL segment")
	}
	// End LSN: zero-pad the segment holding it after it.
	mm := lsnRE.FindSubmatch(manifest)
	if mm == nil {
		return nil, errors.New("verifytest: no End-LSN in the manifest")
	}
	endLSN, err := pgformat.ParseLSN(string(mm[1]))
	if err != nil {
		return nil, err
	}
	end := uint64(endLSN)
	segSize := int64(len(segs[0].Data))
	for i := range segs {
		_, log, seg, _ := pgformat.ParseWALFileName(strings.TrimPrefix(segs[i].Name, "pg_wal/"))
		segno, _ := pgformat.WALSegmentNo(log, seg, int(segSize))
		start := segno * uint64(segSize)
		if end >= start && end < start+uint64(segSize) {
			d := append([]byte(nil), segs[i].Data...)
			clear(d[end-start:])
			segs[i].Data = d
		}
	}
	out := &Stream{}
	out.Members = append(out.Members, *label)
	for i, m := range s.Members {
		out.Members = append(out.Members, m)
		if i == 3 {
			out.Members = append(out.Members, segs[0])
		}
	}
	if len(s.Members) <= 3 {
		out.Members = append(out.Members, segs[0])
	}
	for _, sp := range spaces {
		root := "pg_tblspc/" + sp.oid
		if out.Index(root) < 0 {
			out.Members = append(out.Members, Member{Name: root, Type: tar.TypeDir, Mode: 0o700})
		}
		for _, m := range sp.members {
			m.Name = root + "/" + m.Name
			out.Members = append(out.Members, m)
		}
	}
	out.Members = append(out.Members, segs[1:]...)
	// The manifest without tablespace_map.
	var kept [][]byte
	for _, line := range bytes.SplitAfter(manifest, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{ "Path": "tablespace_map",`)) {
			continue
		}
		kept = append(kept, line)
	}
	out.Members = append(out.Members, Member{Name: "backup_manifest", Type: tar.TypeReg, Mode: 0o600, Data: Rechecksum(bytes.Join(kept, nil))})
	return out, nil
}
