package walarchive

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An archive whose newest segment is of another cluster (its long page header's system
// identifier is not the server's) is refused before anything is streamed into it, with
// ErrOtherCluster; nothing is added to it. A sink that cannot be read back is not checked.
func TestArchiveRefusesAnotherClustersArchive(t *testing.T) {
	c := newCluster(t, nil)
	dir := t.TempDir()
	seg := make([]byte, 1<<20)
	binary.LittleEndian.PutUint16(seg[0:2], 0xD110) // a page magic; the check reads xlp_info and xlp_sysid
	binary.LittleEndian.PutUint16(seg[2:4], 0x0002) // XLP_LONG_HEADER
	binary.LittleEndian.PutUint32(seg[4:8], 1)
	binary.LittleEndian.PutUint64(seg[24:32], 7000000000000000042)
	const name = "000000010000000000000003"
	if err := os.WriteFile(filepath.Join(dir, name), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	sink, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(baseConfig(t, c.DSN(), "othercluster", sink))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = a.Run(ctx)
	if !errors.Is(err, ErrOtherCluster) || !strings.Contains(err.Error(), "7000000000000000042") || !strings.Contains(err.Error(), "new, empty archive") {
		t.Fatalf("Run: %v; want ErrOtherCluster naming both system identifiers", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run retried instead of stopping")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("the archive holds %d files, want only the other cluster's segment", len(entries))
	}

	// The same segment with the server's own system identifier is accepted: the check reads
	// the header, not the name.
	binary.LittleEndian.PutUint64(seg[24:32], mustUint(t, c.QueryValue(t, "select system_identifier from pg_control_system()")))
	if err := os.WriteFile(filepath.Join(dir, name), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.checkArchiveCluster(context.Background(), name, c.QueryValue(t, "select system_identifier from pg_control_system()")); err != nil {
		t.Fatalf("the server's own archive: %v", err)
	}
	// A sink that only stores and lists is not read back.
	b := &Archiver{cfg: Config{Sink: listOnly{sink}}}
	if err := b.checkArchiveCluster(context.Background(), name, "1"); err != nil {
		t.Fatalf("a sink that cannot be read: %v", err)
	}
}

type listOnly struct{ d *DirSink }

func (l listOnly) Store(ctx context.Context, name string, data []byte) error {
	return l.d.Store(ctx, name, data)
}
func (l listOnly) List(ctx context.Context) ([]string, error) { return l.d.List(ctx) }

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCheckArchiveCluster covers what the real-server test above cannot reach: an archive
// whose newest segment cannot be decoded, or does not start with a long page header, is a
// fatal error (reconnecting cannot mend it) that names the segment and says what to do; a
// segment of the server's own cluster passes, another cluster's is ErrOtherCluster.
func TestCheckArchiveCluster(t *testing.T) {
	const name = "000000010000000000000003"
	seg := make([]byte, 8192)
	binary.LittleEndian.PutUint16(seg[0:2], 0xD110)
	binary.LittleEndian.PutUint16(seg[2:4], 0x0002) // XLP_LONG_HEADER
	binary.LittleEndian.PutUint64(seg[24:32], 7000000000000000042)
	short := make([]byte, 8192) // a short page header: xlp_info without XLP_LONG_HEADER
	binary.LittleEndian.PutUint16(short[0:2], 0xD110)
	for _, tc := range []struct {
		name     string
		stored   []byte
		serverID string
		want     string // in the error; "" for none
		other    bool   // errors.Is ErrOtherCluster
	}{
		{"own cluster", seg, "7000000000000000042", "", false},
		{"another cluster", seg, "7000000000000000043", "is of the cluster with system identifier 7000000000000000042", true},
		{"short page header", short, "1", "does not start with a WAL long page header", false},
		{"too short", seg[:20], "1", "does not start with a WAL long page header", false},
		{"undecodable", append([]byte{0x28, 0xB5, 0x2F, 0xFD}, "not zstd at all"...), "1", "newest segment " + name, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, name), tc.stored, 0o600); err != nil {
				t.Fatal(err)
			}
			sink, err := NewDirSink(dir)
			if err != nil {
				t.Fatal(err)
			}
			a := &Archiver{cfg: Config{Sink: sink}}
			err = a.checkArchiveCluster(context.Background(), name, tc.serverID)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("%v, want none", err)
				}
				return
			}
			var fatal *fatalError
			if !errors.As(err, &fatal) || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrOtherCluster) != tc.other {
				t.Fatalf("%v (%T), want a fatal error with %q, ErrOtherCluster %v", err, err, tc.want, tc.other)
			}
		})
	}
}
