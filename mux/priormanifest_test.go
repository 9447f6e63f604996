package mux_test

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/pgformat"
)

// PriorManifest takes IncrementalFrom's manifest from a prior stream's backup_manifest member
// byte for byte, or from a backup_manifest file, and refuses a stream without one.
func TestPriorManifest(t *testing.T) {
	var manifest bytes.Buffer
	b, err := pgformat.NewManifestBuilder(&manifest, pgformat.ManifestOptions{SystemIdentifier: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish([]pgformat.WALRange{{Timeline: 1, Start: 0x2000028, End: 0x2000100}}); err != nil {
		t.Fatal(err)
	}
	stream := func(withManifest bool) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		add := func(name string, data []byte) {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg})
			tw.Write(data)
		}
		add("PG_VERSION", []byte("17\n"))
		add("pg_wal/000000010000000000000002", make([]byte, 1024))
		if withManifest {
			add("backup_manifest", manifest.Bytes())
		}
		tw.Close()
		return buf.Bytes()
	}
	for name, in := range map[string][]byte{"stream": stream(true), "manifest file": manifest.Bytes()} {
		got, err := mux.PriorManifest(bytes.NewReader(in))
		if err != nil || !bytes.Equal(got, manifest.Bytes()) {
			t.Errorf("%s: %d bytes, %v; want the manifest's %d bytes", name, len(got), err, manifest.Len())
		}
	}
	if _, err := mux.PriorManifest(bytes.NewReader(stream(false))); err == nil || !strings.Contains(err.Error(), "no backup_manifest") {
		t.Errorf("a stream without a manifest: %v", err)
	}
	if _, err := mux.PriorManifest(strings.NewReader("not a stream")); err == nil {
		t.Error("garbage accepted")
	}
}
