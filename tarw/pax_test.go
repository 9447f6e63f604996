package tarw

import (
	"archive/tar"
	"bytes"
	"io"
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
