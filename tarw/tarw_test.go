package tarw

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

func TestRoundTripGNUTar(t *testing.T) {
	gnu := gnuArchive(t)
	out := roundTrip(t, gnu, mainArchive())
	// Every member of a GNU ustar archive is canonical except none; check that
	// the combined output starts with the input's first header unchanged.
	if !bytes.Equal(out[:512], gnu[:512]) {
		t.Fatal("first header not passed through")
	}
}

func TestRoundTripServerStyle(t *testing.T) {
	roundTrip(t, tablespaceArchive(), mainArchive())
}

func TestCombinedBackup(t *testing.T) {
	mt := time.Unix(1700000200, 0).UTC()
	seg := pattern(99, 1<<20)
	opt := rtOptions{
		inputs: []rtInput{
			{data: tablespaceArchive(), name: "16384.tar", reroot: "pg_tblspc/16384"},
			{data: mainArchive(), name: "base.tar"},
		},
		extras: []rtExtra{
			{Member{Name: "pg_wal/000000010000000000000003", Type: TypeFile, Mode: 0600, ModTime: mt, Size: int64(len(seg))}, seg},
			{Member{Name: "pg_wal/00000002.history", Type: TypeFile, Mode: 0600, ModTime: mt, Size: 41}, []byte("1\t0/3000000\tno recovery target specified\n")},
			{Member{Name: "standby.signal", Type: TypeFile, Mode: 0600, ModTime: mt}, []byte{}},
			{Member{Name: "backup_manifest", Type: TypeFile, Mode: 0600, ModTime: mt, Size: 513}, pattern(5, 513)},
		},
		tblspcDirs: true,
	}
	out := roundTripOpt(t, opt)
	got := readAll(t, out)
	names := map[string]entry{}
	for _, e := range got {
		names[e.Name] = e
	}
	if e, ok := names["pg_tblspc/16384"]; !ok || e.Type != TypeDir || e.Mode != 0700 {
		t.Fatalf("pg_tblspc/16384: %v", e)
	}
	long := "pg_tblspc/16384/" + strings.Repeat("n", 95)
	if _, ok := names[long]; !ok {
		t.Fatalf("re-rooted long name %q missing", long)
	}
	if _, ok := names["pg_wal/archive_status"]; !ok {
		t.Fatal("pg_wal/archive_status missing")
	}
	if bytes.Contains(out, []byte("./pg_wal")) {
		t.Fatal(`output still contains "./pg_wal"`)
	}
	if got[len(got)-1].Name != "backup_manifest" {
		t.Fatal("backup_manifest is not last")
	}
}

func TestLongNames(t *testing.T) {
	mt := time.Unix(1700000300, 0).UTC()
	deepDir := strings.Repeat("abcdefghij/", 25) + "end" // 278 bytes
	opt := rtOptions{
		inputs: []rtInput{
			{data: tablespaceArchive(), name: "16384.tar", reroot: "pg_tblspc/16384"},
			{data: tablespaceArchive(), name: "16999.tar", reroot: "pg_tblspc/16999/" + strings.Repeat("z", 140)},
		},
		extras: []rtExtra{
			{Member{Name: strings.Repeat("b", 120), Type: TypeFile, Mode: 0600, ModTime: mt, Size: 3}, []byte("abc")},
			{Member{Name: deepDir, Type: TypeDir, Mode: 0750, ModTime: mt}, nil},
			{Member{Name: deepDir + "/f", Type: TypeFile, Mode: 0640, ModTime: mt, Size: 1}, []byte("x")},
			{Member{Name: "lnk", Type: TypeSymlink, Mode: 0777, ModTime: mt, Linkname: "/" + strings.Repeat("t", 150)}, nil},
			{Member{Name: strings.Repeat("c", 150) + "/", Type: TypeDir, Mode: 0700, ModTime: mt}, nil},
		},
	}
	opt.pax = true
	// A trailing slash is not a normalised name: WriteHeader refuses it.
	var w Writer
	w.buf = make([]byte, 1024)
	if err := w.WriteHeader(&opt.extras[4].m); err == nil {
		t.Fatal("name with trailing slash accepted")
	}
	opt.extras[4].m.Name = strings.TrimSuffix(opt.extras[4].m.Name, "/")
	roundTripOpt(t, opt)
}

func TestChunking(t *testing.T) {
	gnu := gnuArchive(t)
	inputs := []rtInput{
		{data: tablespaceArchive(), name: "16384.tar", reroot: "pg_tblspc/16384"},
		{data: mainArchive(), name: "base.tar"},
		{data: gnu, name: "gnu.tar"},
	}
	ref, _ := combine(t, rtOptions{inputs: inputs})
	chunkers := map[string]func(io.Reader) io.Reader{
		"OneByte":  iotest.OneByteReader,
		"Half":     iotest.HalfReader,
		"DataErr":  iotest.DataErrReader,
		"511":      chunker(511),
		"512":      chunker(512),
		"513":      chunker(513),
		"32K":      chunker(32 << 10),
		"1M":       chunker(1 << 20),
		"mixed":    chunker(1, 511, 1, 512, 3, 4096, 100000),
		"random1":  randomChunker(1),
		"random2":  randomChunker(2),
		"random3":  randomChunker(3),
		"emptyish": func(r io.Reader) io.Reader { return &emptyReads{r: r} },
	}
	for name, c := range chunkers {
		t.Run(name, func(t *testing.T) {
			out, _ := combine(t, rtOptions{inputs: inputs, chunk: c})
			if !bytes.Equal(out, ref) {
				t.Fatal("output differs from unchunked input")
			}
		})
	}
}

// emptyReads returns (0, nil) every other call.
type emptyReads struct {
	r io.Reader
	n int
}

func (e *emptyReads) Read(p []byte) (int, error) {
	e.n++
	if e.n%2 == 0 {
		return 0, nil
	}
	return e.r.Read(p)
}

func TestPassthroughExact(t *testing.T) {
	in := mainArchive()
	r := NewReader(bytes.NewReader(in))
	var out bytes.Buffer
	w := NewWriter(&out)
	type rec struct {
		in, out int64
		name    string
	}
	var recs []rec
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
		recs = append(recs, rec{m.Offset, w.Written() - 512, m.Name})
		if _, err := io.Copy(w, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	o := out.Bytes()
	reencoded := 0
	for _, c := range recs {
		same := bytes.Equal(o[c.out:c.out+512], in[c.in:c.in+512])
		switch c.name {
		case "pg_wal/archive_status", "pg_tblspc/16384":
			// "./pg_wal/archive_status/" and the symlink name with a
			// trailing "/" are not normalised: re-encoded.
			if same {
				t.Errorf("%q passed through unchanged", c.name)
			}
			reencoded++
		default:
			if !same {
				t.Errorf("%q: header not passed through byte for byte", c.name)
			}
		}
	}
	if reencoded != 2 {
		t.Fatalf("re-encoded %d members, want 2", reencoded)
	}
	// Apart from those two headers, the output is the input.
	if len(o) != len(in) {
		t.Fatalf("output %d bytes, input %d", len(o), len(in))
	}
}

func TestChangedMemberReencoded(t *testing.T) {
	in := mainArchive()
	r := NewReader(bytes.NewReader(in))
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	for _, change := range []func(*Member){
		func(m *Member) { m.Mode = 0640 },
		func(m *Member) { m.ModTime = m.ModTime.Add(time.Second) },
		func(m *Member) { m.Name = "other" },
	} {
		c := *m
		change(&c)
		var out bytes.Buffer
		w := NewWriter(&out)
		if err := w.WriteHeader(&c); err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		if bytes.Equal(out.Bytes()[:512], in[:512]) {
			t.Fatal("changed member passed through")
		}
		got := readAll(t, out.Bytes())
		if len(got) != 1 || !sameMeta(got[0], entry{c.Name, c.Type, c.Size, c.Mode, c.ModTime.Unix(), "", nil}) || !bytes.Equal(got[0].Data, data) {
			t.Fatalf("got %v", got)
		}
	}
	// Size change: the orchestrator appends to postgresql.auto.conf.
	c := *m
	c.Size += 10
	var out bytes.Buffer
	w := NewWriter(&out)
	w.WriteHeader(&c)
	w.Write(data)
	w.Write(make([]byte, 10))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, out.Bytes()); got[0].Size != m.Size+10 {
		t.Fatalf("size %d", got[0].Size)
	}
}

func TestOwnerOfSynthesized(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	r := NewReader(bytes.NewReader(mainArchive()))
	m, _ := r.Next()
	w.WriteHeader(m)
	io.Copy(w, r)
	w.WriteFile("x", 0600, time.Unix(1, 0), []byte("x"))
	w.Close()
	h := out.Bytes()[512+512:]
	if string(cstring(h[offUname:offUname+32])) != "postgres" {
		t.Fatalf("uname %q", cstring(h[offUname:offUname+32]))
	}
	if uid, _ := parseNumber(h[offUID:offUID+8], false); uid != 999 {
		t.Fatalf("uid %d", uid)
	}
}

// corrupt returns a copy of the archive with f applied.
func corrupt(a []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte(nil), a...))
}

// resum fixes the checksum of the header at off.
func resum(b []byte, off int) []byte {
	h := (*[512]byte)(b[off : off+512])
	u, _ := checksums(h)
	printTarNumber(h[148:156], uint64(u), false)
	return b
}

func TestReaderErrors(t *testing.T) {
	good := srvArchive(
		srvMember{name: "a", typ: TypeFile, size: 600, mode: 0600, mtime: 1},
		srvMember{name: "global/1262", typ: TypeFile, size: 10, mode: 0600, mtime: 1},
	)
	second := 512 + 1024 // offset of the second header
	trailer := second + 1024
	setHdr := func(off int, field int, val string) func([]byte) []byte {
		return func(b []byte) []byte {
			copy(b[off+field:], val)
			return resum(b, off)
		}
	}
	one := func(m srvMember) []byte { return srvArchive(m) }
	tests := []struct {
		name   string
		in     []byte
		member string
		offset int64
		msg    string
		eof    bool // wraps io.ErrUnexpectedEOF
	}{
		{"checksum", corrupt(good, func(b []byte) []byte { b[second+148+6]++; return b }), "global/1262", int64(second), "header checksum mismatch (stored", false},
		{"checksum garbage", corrupt(good, func(b []byte) []byte { copy(b[second+148:], "abc"); return b }), "global/1262", int64(second), "invalid header checksum field", false},
		{"truncated data", good[:512+300], "a", 0, "size 600 runs past the end of the input (300 data bytes missing)", true},
		{"truncated padding", good[:512+700], "a", 0, "padding", true},
		{"truncated header", good[:second+100], "", int64(second), "inside a header (100 of 512 bytes)", true},
		{"no trailer", good[:trailer], "", int64(trailer), "without the end-of-archive trailer", true},
		{"half trailer", good[:trailer+512], "", int64(trailer), "after 512 of the 1024 bytes", true},
		{"trailer 1000", good[:trailer+1000], "", int64(trailer), "after 1000 of the 1024 bytes", true},
		{"nonzero trailer", corrupt(good, func(b []byte) []byte { b[trailer+700] = 1; return b }), "", int64(trailer + 700), "non-zero byte 0x01 where the end-of-archive trailer should be", false},
		{"garbage after trailer", append(append([]byte(nil), good...), make([]byte, 5000)...), "", int64(trailer + 1024), "not whole 512-byte blocks", false},
		{"data after trailer", append(append([]byte(nil), good...), append(make([]byte, 512), 'x')...), "", int64(trailer + 1024 + 512), "after the end-of-archive trailer", false},
		{"dotdot", one(srvMember{name: "a/../../etc/passwd", typ: TypeFile, mode: 0600}), "a/../../etc/passwd", 0, `".." component`, false},
		{"dotdot dir", one(srvMember{name: "../", typ: TypeDir, mode: 0700}), "../", 0, `".." component`, false},
		{"absolute", one(srvMember{name: "/etc/passwd", typ: TypeFile, mode: 0600}), "/etc/passwd", 0, "absolute member name", false},
		{"absolute symlink name", one(srvMember{name: "/pg_tblspc/1/", typ: TypeSymlink, mode: 0777, link: "/x"}), "/pg_tblspc/1/", 0, "absolute member name", false},
		{"dotdot symlink name", one(srvMember{name: "pg_tblspc/../x/", typ: TypeSymlink, mode: 0777, link: "/x"}), "pg_tblspc/../x/", 0, `".." component`, false},
		{"empty symlink target", one(srvMember{name: "pg_tblspc/1/", typ: TypeSymlink, mode: 0777}), "pg_tblspc/1/", 0, "empty target", false},
		{"empty name", one(srvMember{name: "./", typ: TypeDir, mode: 0700}), "./", 0, "empty name", false},
		{"double slash", one(srvMember{name: "a//b", typ: TypeFile, mode: 0600}), "a//b", 0, "empty component", false},
		{"file slash", one(srvMember{name: "a/", typ: TypeFile, mode: 0600}), "a/", 0, `regular file name ends in "/"`, false},
		{"hard link", one(srvMember{name: "a", typ: '1', mode: 0600, link: "b"}), "a", 0, "member type '1' not supported", false},
		{"old regular", one(srvMember{name: "a", typ: 0, mode: 0600}), "a", 0, `member type '\x00' not supported`, false},
		{"gnu longname", one(srvMember{name: "././@LongLink", typ: 'L', mode: 0600}), "././@LongLink", 0, "member type 'L'", false},
		{"empty pax", one(srvMember{name: "x", typ: 'x', mode: 0600}), "x", 0, "PAX extended header size", false},
		{"size garbage", corrupt(good, setHdr(second, 124, "0000000001a ")), "global/1262", int64(second), "invalid size field", false},
		{"size 8 digit", corrupt(good, setHdr(second, 124, "00000008000 ")), "global/1262", int64(second), "invalid size field", false},
		{"size negative", corrupt(good, setHdr(second, 124, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe")), "global/1262", int64(second), "invalid size field", false},
		{"size overflow", corrupt(good, setHdr(second, 124, "\x80\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe")), "global/1262", int64(second), "invalid size field", false},
		{"size huge", corrupt(good, setHdr(second, 124, "\x80\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xfe")), "global/1262", int64(second), "runs past the end", true},
		{"mode garbage", corrupt(good, setHdr(second, 100, "0-00644 ")), "global/1262", int64(second), "invalid mode field", false},
		{"mode huge", corrupt(good, setHdr(second, 100, "\x80\x00\x00\x00\x01\x00\x00\x00")), "global/1262", int64(second), "invalid mode field", false},
		{"uid garbage", corrupt(good, setHdr(second, 108, "99x ")), "global/1262", int64(second), "invalid uid field", false},
		{"gid negative", corrupt(good, setHdr(second, 116, "\xff\xff\xff\xff\xff\xff\xff\xff")), "global/1262", int64(second), "invalid gid field", false},
		{"mtime garbage", corrupt(good, setHdr(second, 136, "1 2")), "global/1262", int64(second), "invalid mtime field", false},
		{"magic", corrupt(good, setHdr(second, 257, "ustaR")), "global/1262", int64(second), "not a ustar header", false},
		{"dir with size", one(srvMember{name: "d/", typ: TypeDir, mode: 0700, size: 512}), "d/", 0, "dir with non-zero size 512", false},
		{"empty input", nil, "", 0, "without the end-of-archive trailer", true},
		{"zero input", make([]byte, 100), "", 0, "inside a header", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, wrap := range []func(io.Reader) io.Reader{
				func(r io.Reader) io.Reader { return r }, iotest.OneByteReader,
			} {
				r := NewReader(wrap(bytes.NewReader(tc.in)))
				r.SetArchiveName("base.tar")
				var err error
				for err == nil {
					_, err = r.Next()
					if err == nil {
						_, err = io.Copy(io.Discard, r)
					}
				}
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v (%T), want *FormatError", err, err)
				}
				if fe.Member != tc.member || fe.Offset != tc.offset || !strings.Contains(fe.Msg, tc.msg) || fe.Archive != "base.tar" {
					t.Fatalf("got %q (member %q offset %d), want member %q offset %d message containing %q",
						err, fe.Member, fe.Offset, tc.member, tc.offset, tc.msg)
				}
				if errors.Is(err, io.ErrUnexpectedEOF) != tc.eof {
					t.Fatalf("errors.Is(err, io.ErrUnexpectedEOF) = %v: %v", !tc.eof, err)
				}
				// Sticky.
				if _, err2 := r.Next(); err2 != err {
					t.Fatalf("second Next: %v", err2)
				}
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	a := srvArchive(
		srvMember{name: "backup_label", typ: TypeFile, size: 1024, mode: 0600, mtime: 1},
		srvMember{name: "global/1262", typ: TypeFile, size: 8192, mode: 0600, mtime: 1},
	)
	computed, _ := checksums((*[512]byte)(a[1536:2048]))
	printTarNumber(a[1536+148:1536+156], uint64(computed+1), false)
	r := NewReader(bytes.NewReader(a))
	r.SetArchiveName("base.tar")
	r.Next()
	_, err := r.Next()
	want := fmt.Sprintf(`tarw: base.tar offset 1536: member "global/1262": header checksum mismatch (stored %07o, computed %07o)`, computed+1, computed)
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestReaderSourceError(t *testing.T) {
	a := mainArchive()
	r := NewReader(io.MultiReader(bytes.NewReader(a[:5000]), iotest.ErrReader(errTest)))
	var err error
	for err == nil {
		_, err = r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
	}
	if !errors.Is(err, errTest) {
		t.Fatalf("got %v", err)
	}
}

func TestReaderTrailerVariants(t *testing.T) {
	a := mainArchive()
	for _, extra := range []int{0, 512, 1024, 8192, 10240} {
		in := append(append([]byte(nil), a...), make([]byte, extra)...)
		if got := readAll(t, in); len(got) != 16 {
			t.Fatalf("extra %d: %d members", extra, len(got))
		}
	}
	// After io.EOF, Next and Read keep returning io.EOF.
	r := NewReader(bytes.NewReader(a))
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Fatal(err)
	}
}

func TestReaderNumbers(t *testing.T) {
	// Base-256 size, negative mtime written by the server's print_tar_number
	// (uint64 cast), GNU negative base-256 mtime.
	a := srvArchive(srvMember{name: "f", typ: TypeFile, size: 5, mode: 0100600, mtime: uint64ToInt(^uint64(99)), base256: true, data: []byte("hello")})
	r := NewReader(bytes.NewReader(a))
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != 5 || m.Mode != 0600 || m.ModTime.Unix() != -100 {
		t.Fatalf("got size %d mode %o mtime %d", m.Size, m.Mode, m.ModTime.Unix())
	}
	if m.canonical {
		t.Fatal("server-encoded negative mtime must be re-encoded")
	}
	var out bytes.Buffer
	w := NewWriter(&out)
	w.WriteHeader(m)
	io.Copy(w, r)
	w.Close()
	roundTripCheckAll(t, out.Bytes(), []entry{{"f", TypeFile, 5, 0600, -100, "", []byte("hello")}})
}

func uint64ToInt(x uint64) int64 { return int64(x) }

// roundTripCheckAll checks an output archive with every reader.
func roundTripCheckAll(t *testing.T, out []byte, want []entry) {
	t.Helper()
	checkOurs(t, out, want)
	checkGo(t, out, want)
	checkPython(t, out, want)
	checkGNUList(t, out, want)
}

func TestWriterErrors(t *testing.T) {
	mt := time.Unix(1700000000, 0)
	t.Run("missing data", func(t *testing.T) {
		w := NewWriter(io.Discard)
		w.WriteHeader(&Member{Name: "a", Type: TypeFile, Size: 10, Mode: 0600, ModTime: mt})
		w.Write([]byte("abc"))
		if err := w.WriteHeader(&Member{Name: "b", Type: TypeDir, Mode: 0700}); !errors.Is(err, ErrMissingData) {
			t.Fatalf("WriteHeader: %v", err)
		}
		if err := w.Close(); !errors.Is(err, ErrMissingData) {
			t.Fatalf("Close: %v", err)
		}
	})
	t.Run("too long", func(t *testing.T) {
		var out bytes.Buffer
		w := NewWriter(&out)
		w.WriteHeader(&Member{Name: "a", Type: TypeFile, Size: 3, Mode: 0600, ModTime: mt})
		n, err := w.Write([]byte("abcd"))
		if n != 3 || !errors.Is(err, ErrWriteTooLong) {
			t.Fatalf("Write: %d, %v", n, err)
		}
		w.WriteHeader(&Member{Name: "b", Type: TypeFile, Size: 3, Mode: 0600, ModTime: mt})
		if _, err := w.ReadFrom(strings.NewReader("abcd")); !errors.Is(err, ErrWriteTooLong) {
			t.Fatalf("ReadFrom: %v", err)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, ErrWriteTooLong) {
			t.Fatalf("Write on full member: %v", err)
		}
		if _, err := w.Write(nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("invalid members", func(t *testing.T) {
		for _, m := range []Member{
			{Name: "", Type: TypeFile},
			{Name: "/abs", Type: TypeFile},
			{Name: "a/../b", Type: TypeFile},
			{Name: "./a", Type: TypeFile},
			{Name: "a/", Type: TypeDir},
			{Name: "a\x00b", Type: TypeFile},
			{Name: "a", Type: '1'},
			{Name: "a", Type: TypeFile, Size: -1},
			{Name: "a", Type: TypeDir, Size: 1},
			{Name: "a", Type: TypeFile, Mode: 010000},
			{Name: "a", Type: TypeSymlink},
			{Name: "a", Type: TypeDir, Linkname: "x"},
			{Name: strings.Repeat("a", 5000), Type: TypeFile},
		} {
			w := NewWriter(io.Discard)
			if err := w.WriteHeader(&m); err == nil {
				t.Errorf("%+v accepted", m)
			}
		}
	})
	t.Run("EPIPE", func(t *testing.T) {
		w := NewWriter(errWriter{syscall.EPIPE})
		if err := w.WriteFile("a", 0600, mt, make([]byte, 100<<10)); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("direct write: %v", err)
		}
		w = NewWriter(errWriter{syscall.EPIPE})
		w.WriteFile("a", 0600, mt, []byte("x"))
		if err := w.Flush(); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("Flush: %v", err)
		}
		if err := w.WriteFile("b", 0600, mt, []byte("x")); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("sticky: %v", err)
		}
		if err := w.Close(); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("Close: %v", err)
		}
		w = NewWriter(errWriter{syscall.EPIPE})
		if err := w.WriteFile("a", 0600, mt, make([]byte, 2<<20)); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("big: %v", err)
		}
	})
	t.Run("no trailer without Close", func(t *testing.T) {
		var out bytes.Buffer
		w := NewWriter(&out)
		w.WriteFile("a", 0600, mt, []byte("x"))
		w.Flush()
		if out.Len() != 512+1 || w.Written() != 513 {
			t.Fatalf("flushed %d bytes, Written %d", out.Len(), w.Written())
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if out.Len() != 1024+1024 {
			t.Fatalf("closed twice: %d bytes", out.Len())
		}
		if err := w.WriteFile("b", 0600, mt, nil); !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
	})
	t.Run("short write", func(t *testing.T) {
		w := NewWriter(iotest.TruncateWriter(io.Discard, 10))
		w.WriteFile("a", 0600, mt, []byte("x"))
		// TruncateWriter reports success for everything; that is fine.
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w = NewWriter(shortWriter{})
		w.WriteFile("a", 0600, mt, []byte("x"))
		if err := w.Close(); !errors.Is(err, io.ErrShortWrite) {
			t.Fatal(err)
		}
	})
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestMemberRead(t *testing.T) {
	a := mainArchive()
	want := readAll(t, a)
	r := NewReader(bytes.NewReader(a))
	if _, err := r.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("Read before Next: %v", err)
	}
	for i := 0; ; i++ {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err := iotest.TestReader(onlyReader{r}, want[i].Data); err != nil {
			t.Fatalf("%q: %v", want[i].Name, err)
		}
	}
}

type onlyReader struct{ io.Reader }

func TestNonCanonicalReencoded(t *testing.T) {
	base := srvMember{name: "dir/file", typ: TypeFile, size: 5, mode: 0640, mtime: 1700000000, data: []byte("hello")}
	variants := map[string]func(h []byte){
		"gnu magic":         func(h []byte) { copy(h[257:265], "ustar  \x00") },
		"leading spaces":    func(h []byte) { copy(h[100:108], "   640 ") },
		"empty uid":         func(h []byte) { copy(h[108:116], make([]byte, 8)) },
		"linkname on file":  func(h []byte) { copy(h[157:], "junk") },
		"star trailer":      func(h []byte) { copy(h[508:], "tar\x00") },
		"mode type bits":    func(h []byte) { copy(h[100:108], "0100640 ") },
		"base-256 devmajor": func(h []byte) { copy(h[329:337], "\x80\x00\x00\x00\x00\x00\x00\x00") },
		"prefix":            func(h []byte) { copy(h[0:100], "file\x00\x00\x00\x00"); copy(h[345:], "./dir") },
	}
	for name, f := range variants {
		t.Run(name, func(t *testing.T) {
			a := srvArchive(base)
			f(a[:512])
			resum(a, 0)
			r := NewReader(bytes.NewReader(a))
			m, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if m.canonical {
				t.Fatal("header considered canonical")
			}
			var out bytes.Buffer
			w := NewWriter(&out)
			w.WriteHeader(m)
			io.Copy(w, r)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			roundTripCheckAll(t, out.Bytes(), []entry{{"dir/file", TypeFile, 5, 0640, 1700000000, "", []byte("hello")}})
		})
	}
}
