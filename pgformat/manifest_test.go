package pgformat

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var testMTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// buildManifest builds a small manifest with the builder.
func buildManifest(t testing.TB, opts ManifestOptions) []byte {
	t.Helper()
	var out bytes.Buffer
	b, err := NewManifestBuilder(&out, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, data string }{{"backup_label", "label"}, {"base/1/1259", "xx"}, {"pg_tblspc/16384/PG_15_202209061/5/16385", ""}, {"weird\"\\\n\x01", "w"}, {"bad\xff", "b"}} {
		if err := b.AddFileContent(f.path, int64(len(f.data)), testMTime, strings.NewReader(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Finish([]WALRange{{Timeline: 2, Start: 0x5000000, End: 0x6000100}, {Timeline: 1, Start: 0x3000028, End: 0x5000000}}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestManifestBuilderLayout(t *testing.T) {
	got := string(buildManifest(t, ManifestOptions{Version: 2, SystemIdentifier: 7345, Algorithm: "crc32c"}))
	head := "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7345,\n\"Files\": [\n" +
		"{ \"Path\": \"backup_label\", \"Size\": 5, \"Last-Modified\": \"2024-05-06 07:08:09 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \""
	if !strings.HasPrefix(got, head) {
		t.Fatalf("head:\n%s", got)
	}
	for _, want := range []string{
		"\" },\n{ \"Path\": \"base/1/1259\", \"Size\": 2,",
		`{ "Path": "weird\"\\\n\u0001", "Size": 1,`,
		`{ "Encoded-Path": "626164ff", "Size": 1,`,
		"\" }\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 2, \"Start-LSN\": \"0/5000000\", \"End-LSN\": \"0/6000100\" },\n{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", \"End-LSN\": \"0/5000000\" }\n],\n\"Manifest-Checksum\": \"",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	m, err := ParseManifest([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 2 || m.SystemIdentifier != 7345 || len(m.Files) != 5 || m.Files[4].Path != "bad\xff" || m.Files[3].Path != "weird\"\\\n\x01" ||
		m.StartLSN() != 0x3000028 || m.EndLSN() != 0x6000100 || m.Files[0].Algorithm != ChecksumCRC32C || m.Files[0].LastModified != "2024-05-06 07:08:09 GMT" {
		t.Fatalf("%+v", m)
	}
	// CRC32C of "label", printed in little-endian byte order.
	h, _ := NewChecksum(ChecksumCRC32C)
	h.Write([]byte("label"))
	if m.Files[0].Checksum != ChecksumHex(h) || m.Files[0].Checksum != CRC32CHex(h.(interface{ Sum32() uint32 }).Sum32()) {
		t.Fatalf("checksum %s", m.Files[0].Checksum)
	}
	if CRC32CHex(0x2247748a) != "8a744722" {
		t.Fatal("CRC32C byte order")
	}
}

func TestManifestBuilderVersions(t *testing.T) {
	v1 := string(buildManifest(t, ManifestOptions{Version: 1, Algorithm: "NONE"}))
	if !strings.HasPrefix(v1, "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n{ \"Path\": \"backup_label\", \"Size\": 5, \"Last-Modified\": \"2024-05-06 07:08:09 GMT\" },") {
		t.Fatalf("v1:\n%s", v1)
	}
	if _, err := ParseManifest([]byte(v1)); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"SHA224", "sha256", "SHA-384", "SHA512"} {
		m, err := ParseManifest(buildManifest(t, ManifestOptions{Algorithm: alg}))
		if err != nil || len(m.Files[1].Checksum) != ChecksumHexLen(m.Files[1].Algorithm) {
			t.Fatalf("%s: %v", alg, err)
		}
	}
	var out bytes.Buffer
	b, _ := NewManifestBuilder(&out, ManifestOptions{Version: 1, ForceEncode: true})
	b.AddFile("a", 0, testMTime, "", nil)
	if _, err := b.Finish([]WALRange{{1, 1, 2}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `{ "Encoded-Path": "61", "Size": 0, "Last-Modified": "2024-05-06 07:08:09 GMT" }`) {
		t.Fatalf("force-encode:\n%s", out.String())
	}
	if _, err := NewManifestBuilder(&out, ManifestOptions{Version: 3}); err == nil {
		t.Fatal("version 3 accepted")
	}
	if _, err := NewManifestBuilder(&out, ManifestOptions{Algorithm: "MD5"}); err == nil {
		t.Fatal("MD5 accepted")
	}
	if err := b.AddFile("x", 1, testMTime, "SHA256", []byte{1}); err == nil {
		t.Fatal("AddFile after Finish accepted")
	}
	b2, _ := NewManifestBuilder(&out, ManifestOptions{})
	if err := b2.AddFileContent("x", 5, testMTime, strings.NewReader("abc")); err == nil {
		t.Fatal("short content accepted")
	}
}

func TestParseManifestErrors(t *testing.T) {
	good := buildManifest(t, ManifestOptions{Version: 2, SystemIdentifier: 1})
	sub := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	cases := map[string][]byte{
		"checksum":    sub(`"Size": 2`, `"Size": 3`),
		"version":     sub(`Version": 2`, `Version": 3`),
		"v1 sysid":    sub(`Version": 2`, `Version": 1`),
		"unknown":     sub(`"Size": 2`, `"Size": 2, "Foo": 1`),
		"neg size":    sub(`"Size": 2`, `"Size": -2`),
		"both paths":  sub(`{ "Path": "backup_label"`, `{ "Path": "backup_label", "Encoded-Path": "61"`),
		"bad hex":     sub(`"Encoded-Path": "626164ff"`, `"Encoded-Path": "6z"`),
		"dup path":    sub(`"Path": "base/1/1259"`, `"Path": "backup_label"`),
		"short sum":   sub(`"Checksum": "`, `"Checksum": "0`),
		"trailing":    append(append([]byte(nil), good...), "{}"...),
		"no newline":  good[:len(good)-1],
		"not utf8":    sub(`"backup_label"`, "\"backup_label\xff\""),
		"bad lsn":     sub(`"Start-LSN": "0/3000028"`, `"Start-LSN": "x"`),
		"dup tli":     sub(`"Timeline": 2`, `"Timeline": 1`),
		"end < start": sub(`"End-LSN": "0/5000000"`, `"End-LSN": "0/1"`),
		"empty":       nil,
	}
	for name, data := range cases {
		if _, err := ParseManifest(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseManifest(cases["checksum"]); !errors.Is(err, ErrManifestChecksum) {
		t.Errorf("checksum: %v", err)
	}
	if _, _, err := ReadManifest(bytes.NewReader(good), 100); !errors.Is(err, ErrManifestTooLarge) {
		t.Errorf("limit: %v", err)
	}
	if m, data, err := ReadManifest(bytes.NewReader(good), 0); err != nil || !bytes.Equal(data, good) || len(m.Files) != 5 {
		t.Errorf("ReadManifest: %v", err)
	}
}

func TestCanonicalChecksum(t *testing.T) {
	for in, want := range map[string]string{"crc32c": "CRC32C", "sha-256": "SHA256", "none": "NONE"} {
		if got, err := CanonicalChecksum(in); err != nil || got != want {
			t.Errorf("%s: %s %v", in, got, err)
		}
	}
	if _, err := NewChecksum(ChecksumNone); err == nil {
		t.Error("NONE hash")
	}
}
