package pgrepl

import (
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
		if got := SegmentStart(tc.lsn, tc.seg); got != tc.start {
			t.Errorf("SegmentStart(%s, %d) = %s, want %s", tc.lsn, tc.seg, got, tc.start)
		}
		if got := WALFileName(tc.tli, tc.lsn, tc.seg); got != tc.name {
			t.Errorf("WALFileName(%d, %s, %d) = %q, want %q", tc.tli, tc.lsn, tc.seg, got, tc.name)
		}
	}
	for tli, want := range map[uint32]string{1: "00000001.history", 2: "00000002.history", 0x1A: "0000001A.history", 0xFFFFFFFF: "FFFFFFFF.history"} {
		if got := HistoryFileName(tli); got != want {
			t.Errorf("HistoryFileName(%d) = %q, want %q", tli, got, want)
		}
	}
}

func TestFileNameAllocs(t *testing.T) {
	buf := make([]byte, 0, 32)
	if n := testing.AllocsPerRun(100, func() { buf = AppendWALFileName(buf[:0], 1, 0x16_B374D848, 16<<20) }); n != 0 {
		t.Fatalf("AppendWALFileName allocates %v times", n)
	}
}
