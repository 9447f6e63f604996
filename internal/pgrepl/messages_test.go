package pgrepl

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/pgformat"
)

// 2024-01-02 03:04:05.678901 UTC is 757479845678901 µs after 2000-01-01 (0x0002B0EC85204F35).
var testTime = time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.UTC)

const testTimeHex = "0002b0ec85204f35"

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimeConversions(t *testing.T) {
	if got := MicrosFromTime(testTime); got != 757479845678901 {
		t.Fatalf("MicrosFromTime = %d", got)
	}
	if got := TimeFromMicros(757479845678901); !got.Equal(testTime) {
		t.Fatalf("TimeFromMicros = %v", got)
	}
	if got := TimeFromMicros(0); !got.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) || got.UTC().Format(time.RFC3339) != "2000-01-01T00:00:00Z" {
		t.Fatalf("TimeFromMicros(0) = %v", got)
	}
	if got := MicrosFromTime(time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)); got != -1_000_000 {
		t.Fatalf("before the epoch: %d", got)
	}
}

func TestParseXLogData(t *testing.T) {
	msg := unhex(t, "77"+"00000016b374d848"+"0000001700000000"+testTimeHex+"deadbeef01")
	x, err := ParseXLogData(msg)
	if err != nil {
		t.Fatal(err)
	}
	if x.WALStart != 0x16_B374D848 || x.ServerWALEnd != 0x17_00000000 || !x.ServerTime.Equal(testTime) {
		t.Fatalf("parsed %+v", x)
	}
	if !bytes.Equal(x.Data, []byte{0xde, 0xad, 0xbe, 0xef, 0x01}) {
		t.Fatalf("data %x", x.Data)
	}
	msg[XLogDataHeaderLen] = 0x11
	if x.Data[0] != 0x11 {
		t.Fatal("Data does not alias the input")
	}
	// A message with no WAL bytes is valid.
	x, err = ParseXLogData(msg[:XLogDataHeaderLen])
	if err != nil || len(x.Data) != 0 {
		t.Fatalf("empty data: %+v %v", x, err)
	}
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"empty":     {nil, "empty"},
		"short":     {msg[:XLogDataHeaderLen-1], "24 bytes, want 25"},
		"keepalive": {unhex(t, "6b"+"0000000000000000"+testTimeHex+"00"), "type byte 'k', want 'w'"},
	} {
		if _, err := ParseXLogData(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestParsePrimaryKeepalive(t *testing.T) {
	tests := []struct {
		hex  string
		want PrimaryKeepalive
	}{
		{"6b" + "00000016b374d848" + testTimeHex + "01", PrimaryKeepalive{0x16_B374D848, testTime, true}},
		{"6b" + "0000000003000000" + testTimeHex + "00", PrimaryKeepalive{0x3000000, testTime, false}},
	}
	for _, tc := range tests {
		k, err := ParsePrimaryKeepalive(unhex(t, tc.hex))
		if err != nil {
			t.Fatal(err)
		}
		if k.ServerWALEnd != tc.want.ServerWALEnd || !k.ServerTime.Equal(tc.want.ServerTime) || k.ReplyRequested != tc.want.ReplyRequested {
			t.Errorf("ParsePrimaryKeepalive(%s) = %+v, want %+v", tc.hex, k, tc.want)
		}
	}
	for _, h := range []string{"", "6b", "6b" + "00000016b374d848" + testTimeHex, "6b" + "00000016b374d848" + testTimeHex + "0100",
		"77" + "00000016b374d848" + testTimeHex + "01"} {
		if _, err := ParsePrimaryKeepalive(unhex(t, h)); err == nil {
			t.Errorf("ParsePrimaryKeepalive(%s): no error", h)
		}
	}
}

func TestAppendStandbyStatus(t *testing.T) {
	tests := []struct {
		write, flush, apply pgformat.LSN
		reply               bool
		hex                 string
	}{
		{0x16_B374D848, 0x16_B3000000, 0, false,
			"72 00000016b374d848 00000016b3000000 0000000000000000 " + testTimeHex + " 00"},
		{1, 2, 3, true,
			"72 0000000000000001 0000000000000002 0000000000000003 " + testTimeHex + " 01"},
	}
	for _, tc := range tests {
		got := AppendStandbyStatus([]byte("pre"), tc.write, tc.flush, tc.apply, testTime, tc.reply)
		want := append([]byte("pre"), unhex(t, tc.hex)...)
		if !bytes.Equal(got, want) {
			t.Errorf("AppendStandbyStatus:\n got %x\nwant %x", got, want)
		}
		if len(got)-3 != StandbyStatusLen {
			t.Errorf("length %d", len(got)-3)
		}
	}
	buf := make([]byte, 0, StandbyStatusLen)
	if n := testing.AllocsPerRun(100, func() { buf = AppendStandbyStatus(buf[:0], 1, 2, 0, testTime, false) }); n != 0 {
		t.Fatalf("AppendStandbyStatus allocates %v times", n)
	}
}

func TestStartReplicationCommand(t *testing.T) {
	for _, tc := range []struct {
		slot  string
		start pgformat.LSN
		tli   uint32
		want  string
	}{
		{"", 0x3000000, 1, "START_REPLICATION PHYSICAL 0/3000000 TIMELINE 1"},
		{"walweave_123", 0x16_B3000000, 2, `START_REPLICATION SLOT "walweave_123" PHYSICAL 16/B3000000 TIMELINE 2`},
		{`we"ird`, 0, 0, `START_REPLICATION SLOT "we""ird" PHYSICAL 0/0`},
	} {
		if got := StartReplicationCommand(tc.slot, tc.start, tc.tli); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// The parsers delegate to pglogrepl; the steady-state WAL path must still not allocate.
func TestParseXLogDataNoAllocs(t *testing.T) {
	msg := make([]byte, XLogDataHeaderLen+8192)
	msg[0] = XLogDataByte
	keep := []byte{PrimaryKeepaliveByte, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := ParseXLogData(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePrimaryKeepalive(keep); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per XLogData + keepalive parse, want 0", allocs)
	}
}

func BenchmarkParseXLogData(b *testing.B) {
	msg := make([]byte, XLogDataHeaderLen+8192)
	msg[0] = XLogDataByte
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseXLogData(msg); err != nil {
			b.Fatal(err)
		}
	}
}
