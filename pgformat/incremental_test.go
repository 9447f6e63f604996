package pgformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestIsIncrementalName(t *testing.T) {
	for p, want := range map[string]string{
		"base/5/INCREMENTAL.16384":                              "base/5/16384",
		"base/5/INCREMENTAL.16384_vm.1":                         "base/5/16384_vm.1",
		"global/INCREMENTAL.1262":                               "global/1262",
		"pg_tblspc/16390/PG_17_202406281/5/INCREMENTAL.16391.2": "pg_tblspc/16390/PG_17_202406281/5/16391.2",
	} {
		if got, ok := IsIncrementalName(p); !ok || got != want {
			t.Errorf("%s: %q %v", p, got, ok)
		}
		if IncrementalName(want) != p {
			t.Errorf("IncrementalName(%s) = %s", want, IncrementalName(want))
		}
	}
	for _, p := range []string{"base/5/16384", "INCREMENTAL.1", "pg_wal/INCREMENTAL.1", "base/INCREMENTAL.1", "base/5/x/INCREMENTAL.1",
		"pg_tblspc/1/INCREMENTAL.1", "pg_tblspc/1/PG_17/INCREMENTAL.1", "base/5/INCREMENTAL.", "global/x/INCREMENTAL.1"} {
		if _, ok := IsIncrementalName(p); ok {
			t.Errorf("%s accepted", p)
		}
	}
}

func TestIncrementalHeader(t *testing.T) {
	for _, tc := range []struct {
		h    IncrementalHeader
		size int64
	}{
		{IncrementalHeader{TruncationBlockLength: 7}, 12},
		{IncrementalHeader{BlockCount: 3, TruncationBlockLength: 10, BlockNumbers: []uint32{0, 9, 4}}, 8192 + 3*8192},
		{IncrementalHeader{BlockCount: 2045, TruncationBlockLength: 3000, BlockNumbers: seq(2045)}, 8192 + 2045*8192},
		{IncrementalHeader{BlockCount: 2046, TruncationBlockLength: 3000, BlockNumbers: seq(2046)}, 16384 + 2046*8192},
	} {
		b := tc.h.AppendTo(nil, 8192)
		if int64(len(b)) != IncrementalHeaderSize(tc.h.BlockCount, 8192) || IncrementalFileSize(tc.h, 8192) != tc.size {
			t.Fatalf("%d blocks: header %d bytes, file %d", tc.h.BlockCount, len(b), IncrementalFileSize(tc.h, 8192))
		}
		if binary.LittleEndian.Uint32(b) != 0xd3ae1f0d || !bytes.Equal(b[:4], []byte{0x0d, 0x1f, 0xae, 0xd3}) {
			t.Fatal("magic byte order")
		}
		r := bytes.NewReader(append(b, 0xAA))
		got, err := ReadIncrementalHeader(r, 8192)
		if err != nil {
			t.Fatal(err)
		}
		if got.BlockNumbers == nil {
			got.BlockNumbers = tc.h.BlockNumbers
		}
		if !reflect.DeepEqual(got, tc.h) || r.Len() != 1 {
			t.Fatalf("read %+v, left %d", got.BlockCount, r.Len())
		}
	}
}

func seq(n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(i)
	}
	return s
}

func TestIncrementalHeaderErrors(t *testing.T) {
	good := IncrementalHeader{TruncationBlockLength: 10, BlockNumbers: []uint32{1, 2}}.AppendTo(nil, 8192)
	put := func(off int, v uint32) []byte {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	cases := map[string][]byte{
		"empty":          nil,
		"short":          good[:10],
		"magic":          put(0, 0x0d1faed3),
		"count > relseg": put(4, 131073),
		"trunc > relseg": put(8, 131073),
		"block > relseg": put(12, 131072),
		"duplicate":      put(16, 1),
		"no padding":     good[:20],
		"count lies":     put(4, 100000),
	}
	for name, b := range cases {
		_, err := ReadIncrementalHeader(bytes.NewReader(b), 8192)
		if !errors.Is(err, ErrIncrementalHeader) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ReadIncrementalHeader(bytes.NewReader(good), 1000); err == nil {
		t.Error("block size 1000 accepted")
	}
	if _, err := ReadIncrementalHeaderLimit(bytes.NewReader(put(8, 131072)), 8192, 131072); err != nil {
		t.Errorf("truncation length = RELSEG_SIZE refused: %v", err)
	}
}
