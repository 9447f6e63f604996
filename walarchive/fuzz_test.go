package walarchive

import (
	"strings"
	"testing"

	"github.com/walweave/walweave/pgformat"
)

func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{"000000010000000000000003", "000000010000000000000003.zst", "000000010000000000000003.lz4",
		"000000010000000000000003.partial", "00000002.history", ".walweave-tmp-x", "00000000000000000000000A", "0000000100000000000000g3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseFileName(s)
		if !ok {
			return
		}
		var back string
		switch n.Kind {
		case KindHistory:
			back = pgformat.HistoryFileName(n.Timeline)
		case KindPartial:
			back = n.Base + ".partial"
		case KindSegment:
			back = n.Base + n.Compression.Suffix()
		}
		if back != s || n.Timeline == 0 {
			t.Fatalf("%q parsed as %+v, which names %q", s, n, back)
		}
	})
}

func FuzzParseCompression(f *testing.F) {
	for _, s := range []string{"none", "zstd", "zstd:19", "lz4", "zstd:0", "lz4:3", "gzip", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCompression(s)
		if err != nil {
			return
		}
		c2, err := ParseCompression(c.String())
		if err != nil || c2 != c {
			t.Fatalf("%q -> %v -> %v, %v", s, c, c2, err)
		}
		if c.Algorithm == Zstd && c.Level != 0 && !strings.Contains(s, ":") {
			t.Fatalf("%q has a level", s)
		}
	})
}

func TestCompressRoundTrip(t *testing.T) {
	data := []byte(strings.Repeat("walweave archive ", 70000))
	for _, s := range []string{"none", "zstd", "zstd:9", "lz4"} {
		c, _ := ParseCompression(s)
		z, err := newCompressor(c)
		if err != nil {
			t.Fatal(err)
		}
		out, err := z.compress(data)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decode(append([]byte(nil), out...), int64(len(data)))
		if err != nil || string(back) != string(data) {
			t.Fatalf("%s: round trip: %v", s, err)
		}
		if c.Algorithm != None {
			if len(out) >= len(data) {
				t.Fatalf("%s: %d bytes from %d", s, len(out), len(data))
			}
			if _, err := decode(out, int64(len(data))-1); err == nil {
				t.Fatalf("%s: no error past the limit", s)
			}
		}
		z.close()
	}
}
