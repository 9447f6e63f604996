package tarw

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"math/rand"
	"strings"
	"testing"
)

type fuzzMember struct {
	m    Member
	data []byte
}

// fuzzRead reads a whole archive, reading member data with reads of varying
// sizes; it returns the members read and the final error (nil on io.EOF).
func fuzzRead(t *testing.T, src io.Reader, skipOdd bool) ([]fuzzMember, error) {
	r := NewReader(src)
	var out []fuzzMember
	buf := make([]byte, 1000)
	for i := 0; ; i++ {
		m, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			return out, err
		}
		if skipOdd && i%2 == 1 {
			out = append(out, fuzzMember{*m, nil})
			continue // Next skips the data
		}
		var d []byte
		for k := 1; ; k = (k*3 + 1) % 997 {
			n, err := r.Read(buf[:k+1])
			d = append(d, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return append(out, fuzzMember{*m, nil}), err
			}
		}
		if int64(len(d)) != m.Size {
			t.Fatalf("%q: read %d bytes, size %d", m.Name, len(d), m.Size)
		}
		out = append(out, fuzzMember{*m, d})
	}
}

// FuzzReader feeds arbitrary bytes to the Reader (with fixSums, every
// non-zero block first gets a valid header checksum). It must never panic; the
// same input in one piece and one byte at a time must give the same result;
// an accepted archive must pass through a Writer into an archive that Go's
// archive/tar reads back with the same members.
func FuzzReader(f *testing.F) {
	f.Add(mainArchive(), false)
	f.Add(tablespaceArchive(), true)
	f.Add(srvArchive(srvMember{name: "a", typ: TypeFile, size: 3, mode: 0600, data: []byte("abc"), base256: true}), true)
	f.Add([]byte{}, false)
	f.Add(make([]byte, 1024), false)
	f.Fuzz(fuzzCheck)
}

// fuzzCheck is the body of FuzzReader.
func fuzzCheck(t *testing.T, in []byte, fixSums bool) {
	if fixSums {
		// Give every non-zero 512-byte block a valid header checksum,
		// so that mutations of the other header fields get past it.
		in = append([]byte(nil), in...)
		for off := 0; off+blockSize <= len(in); off += blockSize {
			h := (*[blockSize]byte)(in[off : off+blockSize])
			if !allZero(h[:]) {
				sum, _ := checksums(h)
				formatOctal(h[offChksum:offChksum+7], sum)
				h[offChksum+7] = ' '
			}
		}
	}
	got, err := fuzzRead(t, bytes.NewReader(in), false)
	got1, err1 := fuzzRead(t, &chunkReader{r: bytes.NewReader(in), sizes: []int{1, 7, 511, 512, 513, 4096}}, true)
	if (err == nil) != (err1 == nil) || (err != nil && err.Error() != err1.Error()) || len(got) != len(got1) {
		t.Fatalf("chunked read differs:\n%v\n%v", err, err1)
	}
	for i := range got {
		if got[i].m.fields() != got1[i].m.fields() || got[i].m.Offset != got1[i].m.Offset {
			t.Fatalf("member %d differs", i)
		}
	}
	if err != nil {
		return
	}
	var out bytes.Buffer
	w := NewWriter(&out)
	for _, fm := range got {
		m := fm.m
		if err := w.WriteHeader(&m); err != nil {
			t.Fatalf("WriteHeader(%q): %v", m.Name, err)
		}
		if _, err := w.Write(fm.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	for i, fm := range got {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("archive/tar: member %d: %v", i, err)
		}
		m := fm.m
		d, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		if strings.TrimSuffix(h.Name, "/") != m.Name || Type(h.Typeflag) != m.Type || h.Size != m.Size ||
			h.Mode&07777 != m.Mode || !h.ModTime.Equal(m.ModTime) || h.Linkname != m.Linkname || !bytes.Equal(d, fm.data) {
			t.Fatalf("archive/tar: member %d: %+v\nwant %+v", i, h, m)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("archive/tar: after the last member: %v", err)
	}
}

// TestRandomMutations runs the FuzzReader checks on random mutations of
// header fields of valid archives (a quick, deterministic complement to
// fuzzing).
func TestRandomMutations(t *testing.T) {
	seeds := [][]byte{mainArchive(), tablespaceArchive()}
	rng := rand.New(rand.NewSource(1))
	n := 1000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		in := append([]byte(nil), seeds[i%2]...)
		for j := rng.Intn(4); j >= 0; j-- {
			off := rng.Intn(len(in))
			switch rng.Intn(4) {
			case 0:
				in[off] = byte(rng.Intn(256))
			case 1:
				in[off] = "0123456789 \x00/.\x80\xff"[rng.Intn(16)]
			case 2:
				in = in[:off]
			case 3:
				in[off] ^= 1 << rng.Intn(8)
			}
		}
		fuzzCheck(t, in, rng.Intn(4) != 0)
	}
}
