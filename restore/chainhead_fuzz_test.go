package restore

import (
	"bytes"
	"io"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/pgformat"
)

// FuzzPeekLabel: whatever the input, peekLabel does not panic, the reader it returns yields
// the input exactly (the stream is still read once, from its start), and a label it returns
// comes from a backup_label member; with a head limit smaller than the input too.
func FuzzPeekLabel(f *testing.F) {
	full := &fixture.Chain17{Start: 0x2000028}
	full.Add("base/5/16384", fixture.Blocks("ab"))
	inc := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
	inc.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(2, []uint32{1}, "B"))
	for _, c := range []*fixture.Chain17{full, inc} {
		s, err := c.Stream()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.Bytes(), uint16(0))
		f.Add(s.Bytes(), uint16(700))
	}
	f.Add([]byte("not a tar"), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		lim := MaxChainHead
		if limit > 0 {
			lim = int(limit)
		}
		l, _, r := peekLabel(bytes.NewReader(data), lim)
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("the stream read back differs (%d of %d bytes, %v)", len(got), len(data), err)
		}
		if l != nil && !bytes.Contains(data, []byte("backup_label")) {
			t.Fatal("a label from a stream that has no backup_label member")
		}
	})
}

// TestPeekLabelFindsIt: in a chain stream, backup_label is found in the head and the head
// limit makes peekLabel give up without losing bytes.
func TestPeekLabelFindsIt(t *testing.T) {
	inc := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
	inc.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(2, []uint32{1}, "B"))
	s, err := inc.Stream()
	if err != nil {
		t.Fatal(err)
	}
	l, origin, _ := peekLabel(bytes.NewReader(s.Bytes()), MaxChainHead)
	if l == nil || !l.Incremental() || l.IncrementalFromLSN != 0x2000028 || origin != (pgformat.BackupOrigin{}) {
		t.Fatalf("label %+v, origin %+v", l, origin)
	}
	inc.Origin = pgformat.BackupOrigin{SystemID: 7450000000000000001, ServerVersion: 170006}
	if s, err = inc.Stream(); err != nil {
		t.Fatal(err)
	}
	if l, origin, _ := peekLabel(bytes.NewReader(s.Bytes()), MaxChainHead); l == nil || origin != inc.Origin {
		t.Fatalf("label %+v, origin %+v; want origin %+v", l, origin, inc.Origin)
	}
	if l, _, r := peekLabel(bytes.NewReader(s.Bytes()), 100); l != nil {
		t.Fatal("a label found past the head limit")
	} else if b, _ := io.ReadAll(r); !bytes.Equal(b, s.Bytes()) {
		t.Fatal("bytes lost")
	}
}
