package pgformat

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLSNAndString(t *testing.T) {
	tests := []struct {
		in   string
		want LSN
		out  string
	}{
		{"16/B374D848", 0x16_B374D848, "16/B374D848"},
		{"0/0", 0, "0/0"},
		{"0/1", 1, "0/1"},
		{"1/0", 1 << 32, "1/0"},
		{"ffffffff/ffffffff", ^LSN(0), "FFFFFFFF/FFFFFFFF"},
		{"00000000/01000000", 0x1000000, "0/1000000"},
		{"a/b", 0xA_0000000B, "A/B"},
	}
	for _, tc := range tests {
		got, err := ParseLSN(tc.in)
		if err != nil {
			t.Errorf("ParseLSN(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseLSN(%q) = %#x, want %#x", tc.in, uint64(got), uint64(tc.want))
		}
		if s := got.String(); s != tc.out {
			t.Errorf("%#x.String() = %q, want %q", uint64(got), s, tc.out)
		}
		b, _ := got.AppendText([]byte("x"))
		if string(b) != "x"+tc.out {
			t.Errorf("AppendText = %q", b)
		}
	}
}

func TestParseLSNErrors(t *testing.T) {
	for _, in := range []string{"", "/", "16", "16/", "/B374D848", "16/B374D848/1", "g/0", "0/x",
		"123456789/0", "0/123456789", "-1/0", "0/-1", " 0/0", "0/0 ", "+1/0", "16:B374D848"} {
		if l, err := ParseLSN(in); err == nil {
			t.Errorf("ParseLSN(%q) = %s, want an error", in, l)
		} else if !strings.Contains(err.Error(), "invalid LSN") {
			t.Errorf("ParseLSN(%q) error %q does not say what is wrong", in, err)
		}
	}
}

func TestLSNTextAndLog(t *testing.T) {
	type rec struct{ At LSN }
	b, err := json.Marshal(rec{0x3000028})
	if err != nil || string(b) != `{"At":"0/3000028"}` {
		t.Fatalf("json %s %v", b, err)
	}
	var r rec
	if err := json.Unmarshal([]byte(`{"At":"16/B374D848"}`), &r); err != nil || r.At != 0x16_B374D848 {
		t.Fatalf("unmarshal %v %v", r, err)
	}
	if err := json.Unmarshal([]byte(`{"At":"nope"}`), &r); err == nil {
		t.Fatal("bad LSN unmarshalled")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "lsn", LSN(0x3000028))
	if !strings.Contains(buf.String(), `"lsn":"0/3000028"`) {
		t.Fatalf("log %s", buf.String())
	}
}

func TestLSNAllocs(t *testing.T) {
	buf := make([]byte, 0, 32)
	l := LSN(0x16_B374D848)
	if n := testing.AllocsPerRun(100, func() { buf, _ = l.AppendText(buf[:0]) }); n != 0 {
		t.Fatalf("AppendText allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = l.String() }); n > 1 {
		t.Fatalf("String allocates %v times", n)
	}
}

func TestSegmentStartAndFileNames(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		tli   uint32
		lsn   LSN
		seg   int
		start LSN
		name  string
	}{
		{1, 0x3000028, 16 * mb, 0x3000000, "000000010000000000000003"},
		{1, 0x2FFFFFF, 16 * mb, 0x2000000, "000000010000000000000002"},
		{1, 0x16_B374D848, 16 * mb, 0x16_B3000000, "0000000100000016000000B3"},
		{2, 0x16_B374D848, 16 * mb, 0x16_B3000000, "0000000200000016000000B3"},
		{0xA, 0x1_00000000, 16 * mb, 0x1_00000000, "0000000A0000000100000000"},
		{1, 0x16_B374D848, 1 * mb, 0x16_B3700000, "000000010000001600000B37"},
		{1, 0x16_B374D848, 64 * mb, 0x16_B0000000, "00000001000000160000002C"},
		{1, 0x16_B374D848, 1024 * mb, 0x16_80000000, "000000010000001600000002"},
		{0xFFFFFFFF, ^LSN(0), 16 * mb, 0xFFFFFFFF_FF000000, "FFFFFFFFFFFFFFFF000000FF"},
	}
	for _, tc := range tests {
		if got := tc.lsn.SegmentStart(tc.seg); got != tc.start {
			t.Errorf("SegmentStart(%s, %d) = %s, want %s", tc.lsn, tc.seg, got, tc.start)
		}
		if got := WALFileName(tc.tli, tc.lsn, tc.seg); got != tc.name {
			t.Errorf("WALFileName(%d, %s, %d) = %q, want %q", tc.tli, tc.lsn, tc.seg, got, tc.name)
		}
		tli, log, seg, ok := ParseWALFileName(tc.name)
		segno, ok2 := WALSegmentNo(log, seg, tc.seg)
		if !ok || !ok2 || tli != tc.tli || segno != tc.lsn.Segment(tc.seg) {
			t.Errorf("ParseWALFileName(%q) = %d %d %d %v", tc.name, tli, log, seg, ok)
		}
		if got := WALSegmentFileName(tc.tli, segno, tc.seg); got != tc.name {
			t.Errorf("WALSegmentFileName = %q", got)
		}
	}
	for tli, want := range map[uint32]string{1: "00000001.history", 2: "00000002.history", 0x1A: "0000001A.history", 0xFFFFFFFF: "FFFFFFFF.history"} {
		if got := HistoryFileName(tli); got != want {
			t.Errorf("HistoryFileName(%d) = %q, want %q", tli, got, want)
		}
		if got, ok := ParseHistoryFileName(want); !ok || got != tli {
			t.Errorf("ParseHistoryFileName(%q) = %d %v", want, got, ok)
		}
	}
	for _, bad := range []string{"", "00000001000000000000000", "0000000100000000000000030", "00000001000000000000000a", "000000010000000000000003.partial"} {
		if _, _, _, ok := ParseWALFileName(bad); ok {
			t.Errorf("ParseWALFileName(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"0000001a.history", "00000001.History", "1.history", "00000001.history.done"} {
		if _, ok := ParseHistoryFileName(bad); ok {
			t.Errorf("ParseHistoryFileName(%q) accepted", bad)
		}
	}
	if _, ok := WALSegmentNo(0, 0x100, 16*mb); ok {
		t.Error("seg 0x100 accepted for 16 MiB segments")
	}
}

func TestFileNameAllocs(t *testing.T) {
	buf := make([]byte, 0, 32)
	if n := testing.AllocsPerRun(100, func() { buf = AppendWALFileName(buf[:0], 1, 0x16_B374D848, 16<<20) }); n != 0 {
		t.Fatalf("AppendWALFileName allocates %v times", n)
	}
}

func TestValidWALSegmentSize(t *testing.T) {
	for n, want := range map[int]bool{1 << 20: true, 16 << 20: true, 1 << 30: true, 1 << 19: false, 2 << 30: false, 3 << 20: false, 0: false, -1: false} {
		if ValidWALSegmentSize(n) != want {
			t.Errorf("ValidWALSegmentSize(%d) != %v", n, want)
		}
	}
}

func TestParseHistory(t *testing.T) {
	h, err := ParseHistory([]byte("1\t0/3000158\tno recovery target specified\n\n# comment\n2\t0/5000000\tbefore 2000-01-01 00:00:00+00\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []HistoryEntry{{1, 0x3000158, "no recovery target specified"}, {2, 0x5000000, "before 2000-01-01 00:00:00+00"}}
	if len(h) != 2 || h[0] != want[0] || h[1] != want[1] {
		t.Fatalf("%+v", h)
	}
	for _, bad := range []string{"x\t0/1\n", "1\n", "1\tzz\n", "2\t0/1\tr\n1\t0/2\tr\n", "1\t0/1\tr\n1\t0/2\tr\n"} {
		if _, err := ParseHistory([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if h, err := ParseHistory(nil); err != nil || len(h) != 0 {
		t.Fatalf("empty: %v %v", h, err)
	}
}
