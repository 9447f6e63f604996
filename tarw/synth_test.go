package tarw

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// synthPatternSize is the period of synthesized member data (a power of two).
const synthPatternSize = 1 << 20

var synthPattern = sync.OnceValue(func() []byte { return pattern(42, synthPatternSize) })

// synthReader synthesizes a server-style archive on the fly: the members are
// produced from a list of templates, cycled until limit data bytes have been
// produced, followed by the trailer. Member data is synthPattern repeated.
// It never holds the archive in memory and does not allocate while reading.
type synthReader struct {
	templates []srvMember
	limit     int64 // stop starting new members once this much output was produced
	produced  int64
	members   int
	next      int

	hdr     [blockSize]byte
	hdrLeft int
	data    int64 // data bytes left in the current member
	dataOff int64 // offset in the current member
	pad     int
	trailer int
	done    bool
}

func newSynthReader(templates []srvMember, limit int64) *synthReader {
	return &synthReader{templates: templates, limit: limit}
}

func (s *synthReader) Read(p []byte) (int, error) {
	n := 0
	pat := synthPattern()
	for n < len(p) {
		switch {
		case s.hdrLeft > 0:
			k := copy(p[n:], s.hdr[blockSize-s.hdrLeft:])
			s.hdrLeft -= k
			n += k
		case s.data > 0:
			q := p[n:]
			if int64(len(q)) > s.data {
				q = q[:s.data]
			}
			k := copy(q, pat[s.dataOff&(synthPatternSize-1):])
			s.data -= int64(k)
			s.dataOff += int64(k)
			n += k
		case s.pad > 0:
			k := copy(p[n:], zeros[:s.pad])
			s.pad -= k
			n += k
		case s.trailer > 0:
			k := copy(p[n:], zeros[:s.trailer])
			s.trailer -= k
			n += k
		case s.done:
			s.produced += int64(n)
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case s.produced+int64(n) >= s.limit:
			s.trailer = 1024
			s.done = true
		default:
			m := s.templates[s.next%len(s.templates)]
			s.next++
			s.members++
			s.hdr = [blockSize]byte{}
			srvHeaderInto(s.hdr[:], m)
			s.hdrLeft = blockSize
			if m.typ == TypeFile {
				s.data, s.dataOff = m.size, 0
				s.pad = int(-m.size & (blockSize - 1))
			}
		}
	}
	s.produced += int64(n)
	return n, nil
}

// patternCRC returns the CRC-32C of the first n bytes of the repeated pattern.
func patternCRC(n int64) uint32 {
	tab := crc32.MakeTable(crc32.Castagnoli)
	pat := synthPattern()
	var c uint32
	for n > 0 {
		k := min(n, int64(len(pat)))
		c = crc32.Update(c, tab, pat[:k])
		n -= k
	}
	return c
}

// passthrough copies every member of r to w.
func passthrough(r *Reader, w *Writer, reroot string) (members int, err error) {
	for {
		m, err := r.Next()
		if err == io.EOF {
			return members, nil
		}
		if err != nil {
			return members, err
		}
		if reroot != "" {
			Reroot(m, reroot)
		}
		if err := w.WriteHeader(m); err != nil {
			return members, err
		}
		if _, err := io.Copy(w, r); err != nil {
			return members, err
		}
		members++
	}
}

var benchTemplates = []srvMember{
	{name: "base/16384/", typ: TypeDir, mode: 0700, mtime: 1700000000},
	{name: "base/16384/2619_vm", typ: TypeFile, size: 0, mode: 0600, mtime: 1700000000},
	{name: "base/16384/2619", typ: TypeFile, size: 8192, mode: 0600, mtime: 1700000000},
	{name: "base/16384/2619_fsm", typ: TypeFile, size: 24576, mode: 0600, mtime: 1700000000},
	{name: "base/16384/1259", typ: TypeFile, size: 114688, mode: 0600, mtime: 1700000000},
	{name: "base/16384/16385", typ: TypeFile, size: 1 << 20, mode: 0600, mtime: 1700000000},
	{name: "base/16384/16386", typ: TypeFile, size: 8<<20 + 8192, mode: 0600, mtime: 1700000000},
	{name: "base/16384/16387", typ: TypeFile, size: 64 << 20, mode: 0600, mtime: 1700000000},
	{name: "base/16384/16388", typ: TypeFile, size: 1000, mode: 0600, mtime: 1700000000},
}

var smallTemplates = []srvMember{
	{name: "base/16384/2619", typ: TypeFile, size: 8192, mode: 0600, mtime: 1700000000},
	{name: "base/16384/2620", typ: TypeFile, size: 16384, mode: 0600, mtime: 1700000000},
}

func benchPassthrough(b *testing.B, templates []srvMember, size int64) {
	if testing.Short() {
		size = 64 << 20
	}
	// Measure the archive size once.
	n, _ := io.Copy(io.Discard, newSynthReader(templates, size))
	b.SetBytes(n)
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	members := 0
	b.ResetTimer()
	for range b.N {
		r := NewReader(newSynthReader(templates, size))
		w := NewWriter(io.Discard)
		k, err := passthrough(r, w, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		if w.Written() != n {
			b.Fatalf("wrote %d bytes, want %d", w.Written(), n)
		}
		members += k
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(members), "allocs/member")
	b.ReportMetric(float64(members)/float64(b.N), "members/op")
}

// BenchmarkPassthrough passes a ~1 GiB synthetic archive (64 MiB with -short)
// of mixed file sizes through Reader and Writer to io.Discard.
func BenchmarkPassthrough(b *testing.B) { benchPassthrough(b, benchTemplates, 1<<30) }

// BenchmarkPassthroughSmallFiles does the same with 8 and 16 KiB files only,
// to show the per-member cost.
func BenchmarkPassthroughSmallFiles(b *testing.B) { benchPassthrough(b, smallTemplates, 256<<20) }

// TestHugeMember passes an 8 GiB member (the size field needs base-256)
// through unchanged and re-rooted (re-encoded with a PAX size record), and
// reads the 16 GiB result back with archive/tar, checking the contents.
// TestHugeHeaders checks the same headers with every tar reader.
func TestHugeMember(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("streams 16 GiB; skipped with -short and -race")
	}
	const size = 1 << 33
	templates := []srvMember{
		{name: "base/1/big", typ: TypeFile, size: size, mode: 0600, mtime: 1700000000},
		{name: "base/1/after", typ: TypeFile, size: 700, mode: 0600, mtime: 1700000000},
	}
	input := func() io.Reader { return newSynthReader(templates, size+1025) }
	wantCRC := patternCRC(size)

	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		w := NewWriter(pw)
		_, err := passthrough(NewReader(input()), w, "")
		if err == nil {
			_, err = passthrough(NewReader(input()), w, "pg_tblspc/16384")
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
		errc <- err
	}()
	tr := tar.NewReader(bufio.NewReaderSize(pr, 1<<20))
	wantNames := []string{"base/1/big", "base/1/after", "pg_tblspc/16384/base/1/big", "pg_tblspc/16384/base/1/after"}
	buf := make([]byte, 1<<20)
	tab := crc32.MakeTable(crc32.Castagnoli)
	for i, name := range wantNames {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		if h.Name != name || h.Size != templates[i%2].size {
			t.Fatalf("archive/tar: member %d: %q size %d", i, h.Name, h.Size)
		}
		var c uint32
		for {
			n, err := tr.Read(buf)
			c = crc32.Update(c, tab, buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if i%2 == 0 && c != wantCRC {
			t.Fatalf("archive/tar: %q: contents differ", name)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("archive/tar: after last member: %v", err)
	}
	io.Copy(io.Discard, pr)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestHugeHeaders writes the headers of an 8 GiB member, passed through
// (base-256 size, as the server sends it) and re-encoded (PAX size record),
// without the data, and checks that archive/tar, Python's tarfile and GNU tar
// read the header (the latter two then complain about the missing data).
func TestHugeHeaders(t *testing.T) {
	const size = 1<<33 + 5
	templates := []srvMember{{name: "base/1/big", typ: TypeFile, size: size, mode: 0600, mtime: 1700000000}}
	for _, reroot := range []string{"", "pg_tblspc/16384"} {
		var out strings.Builder
		w := NewWriter(&out)
		r := NewReader(newSynthReader(templates, 1))
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != size {
			t.Fatalf("size %d", m.Size)
		}
		Reroot(m, reroot)
		if err := w.WriteHeader(m); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(w, r, 1<<20); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		hdrs := out.String()
		name := strings.TrimPrefix(reroot+"/base/1/big", "/")

		h, err := tar.NewReader(strings.NewReader(hdrs)).Next()
		if err != nil || h.Name != name || h.Size != size {
			t.Fatalf("archive/tar: %v %v", h, err)
		}
		p := writeTemp(t, []byte(hdrs))
		if python() != "" {
			b, err := exec.Command(python(), "-c", `import sys, tarfile
t = tarfile.open(sys.argv[1], "r|")
m = t.next()
print(m.name, m.size)`, p).CombinedOutput()
			if err != nil || strings.TrimSpace(string(b)) != fmt.Sprintf("%s %d", name, size) {
				t.Fatalf("python: %v: %s", err, b)
			}
		}
		if _, err := exec.LookPath("tar"); err == nil {
			b, _ := exec.Command("tar", "--numeric-owner", "-tvf", p).CombinedOutput()
			if !strings.Contains(string(b), fmt.Sprintf(" %d ", int64(size))) || !strings.Contains(string(b), " "+name+"\n") {
				t.Fatalf("tar -tvf: %s", b)
			}
		}
	}
}

// TestSynthReader checks the generator against archive/tar.
func TestSynthReader(t *testing.T) {
	s := newSynthReader(benchTemplates, 200<<20)
	tr := tar.NewReader(s)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := benchTemplates[n%len(benchTemplates)]; strings.TrimSuffix(want.name, "/") != strings.TrimSuffix(h.Name, "/") {
			t.Fatalf("member %d: %q", n, h.Name)
		}
		n++
	}
	if n != s.members {
		t.Fatalf("%d members, generated %d", n, s.members)
	}
}
