package tarw

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A Reader reads what a Writer writes, PAX extended headers for long names and link targets
// included (a re-rooted tablespace member can outgrow ustar's 255 bytes).
func TestReaderReadsWritersPAXHeaders(t *testing.T) {
	longName := "pg_tblspc/16384/" + strings.Repeat("d", 120) + "/" + strings.Repeat("f", 120) + "/16390"
	longLink := "/srv/" + strings.Repeat("t", 150)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	if err := w.WriteFile(longName, 0o600, mtime, []byte("data of a long name")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&Member{Name: "pg_tblspc/16385", Type: TypeSymlink, Linkname: longLink, Mode: 0o777, ModTime: mtime}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("short", 0o600, mtime, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(" path=")) {
		t.Fatal("the writer wrote no PAX header: the test does not test it")
	}

	r := NewReader(bytes.NewReader(buf.Bytes()))
	m, err := r.Next()
	if err != nil || m.Name != longName || m.Size != 19 {
		t.Fatalf("first member %+v, %v", m, err)
	}
	if data, err := io.ReadAll(r); err != nil || string(data) != "data of a long name" {
		t.Fatalf("data %q, %v", data, err)
	}
	m, err = r.Next()
	if err != nil || m.Type != TypeSymlink || m.Linkname != longLink {
		t.Fatalf("symlink %+v, %v", m, err)
	}
	if m, err = r.Next(); err != nil || m.Name != "short" {
		t.Fatalf("last member %+v, %v", m, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}

	// And a PAX member passed through a Writer is re-encoded, not copied with a stale header.
	var again bytes.Buffer
	r = NewReader(bytes.NewReader(buf.Bytes()))
	w = NewWriter(&again)
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteHeader(m); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&again)
	h, err := tr.Next()
	if err != nil || h.Name != longName {
		t.Fatalf("archive/tar reads %+v, %v from the copy", h, err)
	}
}

// Malformed PAX headers are format errors naming the problem, never a panic or a huge read.
func TestReaderRejectsMalformedPAX(t *testing.T) {
	for name, records := range map[string]string{
		"length too long":  "99 path=x\n",
		"no equals":        "9 pathx\n\n",
		"absolute path":    "13 path=/etc\n",
		"dot-dot path":     "16 path=a/../..\n",
		"negative size":    "11 size=-1\n",
		"length not digit": "x path=a\n",
	} {
		t.Run(name, func(t *testing.T) {
			var x [blockSize]byte
			copy(x[offName:], "PaxHeaders/x")
			formatNumber(x[offMode:offMode+lenMode], 0o644)
			formatNumber(x[offSize:offSize+lenSize], int64(len(records)))
			x[offType] = typePAX
			fillCommon(&x, 0, owner{})
			var buf bytes.Buffer
			buf.Write(x[:])
			buf.WriteString(records)
			buf.Write(make([]byte, -len(records)&(blockSize-1)))
			w := NewWriter(&buf)
			_ = w.WriteFile("x", 0o600, time.Unix(1, 0), nil)
			_ = w.Close()
			r := NewReader(&buf)
			_, err := r.Next()
			var fe *FormatError
			if err == nil || !errorsAs(err, &fe) {
				t.Fatalf("got %v, want a *FormatError", err)
			}
		})
	}
}

func errorsAs(err error, fe **FormatError) bool {
	e, ok := err.(*FormatError)
	if ok {
		*fe = e
	}
	return ok
}

// A member's Comment is a PAX "comment" record: archive/tar, GNU tar and a Reader read it, the
// extracted directory holds the file alone (no stray PAX member), and a member read with one
// passes through a Writer with it.
func TestCommentRecord(t *testing.T) {
	const comment = "walweave: system_identifier=7450000000000000001 server_version_num=180006"
	var buf bytes.Buffer
	w := NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	label := []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n")
	if err := w.WriteHeader(&Member{Name: "backup_label", Type: TypeFile, Size: int64(len(label)), Mode: 0o600, ModTime: mtime, Comment: comment}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(label); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("PG_VERSION", 0o600, mtime, []byte("18\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	h, err := tr.Next()
	if err != nil || h.Name != "backup_label" || h.PAXRecords["comment"] != comment {
		t.Fatalf("archive/tar reads %q with PAX records %q, %v", h.Name, h.PAXRecords, err)
	}
	if h, err = tr.Next(); err != nil || h.Name != "PG_VERSION" || len(h.PAXRecords) != 0 {
		t.Fatalf("second member %+v, %v: a comment must not carry over", h, err)
	}

	r := NewReader(bytes.NewReader(buf.Bytes()))
	m, err := r.Next()
	if err != nil || m.Name != "backup_label" || m.Comment != comment || m.Size != int64(len(label)) {
		t.Fatalf("Reader: %+v, %v", m, err)
	}
	var again bytes.Buffer
	w = NewWriter(&again)
	if err := w.WriteHeader(m); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if m, err = r.Next(); err != nil || m.Comment != "" {
		t.Fatalf("second member %+v, %v", m, err)
	}
	m.Comment = "added later"
	if err := w.WriteHeader(m); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&again)
	for _, want := range []string{comment, "added later"} {
		if h, err := tr.Next(); err != nil || h.PAXRecords["comment"] != want {
			t.Fatalf("copy: %+v, %v; want comment %q", h, err, want)
		}
	}

	for name, c := range map[string]string{"NUL": "a\x00b", "not UTF-8": "\xff", "too long": strings.Repeat("c", maxNameLen+1)} {
		err := NewWriter(io.Discard).WriteHeader(&Member{Name: "x", Type: TypeFile, Mode: 0o600, Comment: c})
		if err == nil || !strings.Contains(err.Error(), "comment") {
			t.Errorf("%s comment: %v, want an error about the comment", name, err)
		}
	}

	if _, err := exec.LookPath("tar"); err != nil {
		if os.Getenv("WALWEAVE_REQUIRE_PG") != "" {
			t.Fatal("GNU tar is not installed")
		}
		return
	}
	dir := t.TempDir()
	cmd := exec.Command("tar", "-xf", "-", "-C", dir)
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("tar -x: %v: %s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "PG_VERSION backup_label" {
		t.Fatalf("tar -x made %q", names)
	}
	if got, _ := os.ReadFile(dir + "/backup_label"); !bytes.Equal(got, label) {
		t.Fatalf("extracted backup_label %q", got)
	}
}
