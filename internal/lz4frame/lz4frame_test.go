package lz4frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pierrec/lz4/v4"
)

// sample returns n bytes that compress like database pages: runs, repeats at short and long
// distances (across 64 KB and block boundaries), and incompressible stretches.
func sample(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 0, n)
	for len(b) < n {
		switch rng.IntN(5) {
		case 0: // a run
			c := byte(rng.IntN(256))
			for range rng.IntN(3000) {
				b = append(b, c)
			}
		case 1: // random bytes
			for range rng.IntN(2000) {
				b = append(b, byte(rng.Uint32()))
			}
		case 2, 3: // a repeat from up to 64 KB back
			if len(b) > 0 {
				from := len(b) - 1 - rng.IntN(min(len(b), 65535))
				k := rng.IntN(5000)
				for i := range k {
					b = append(b, b[from+i%(len(b)-from)])
				}
			}
		default: // text
			b = append(b, fmt.Sprintf("row %d | %08x | walweave\n", rng.IntN(1e6), rng.Uint32())...)
		}
	}
	return b[:n]
}

func pierrecFrame(t testing.TB, data []byte, opts ...lz4.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := lz4.NewWriter(&buf)
	if err := zw.Apply(opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(t testing.TB, r io.Reader) ([]byte, error) {
	t.Helper()
	return io.ReadAll(NewReader(r))
}

func TestXXH32(t *testing.T) {
	// Reference values of xxHash32 with seed 0.
	for in, want := range map[string]uint32{
		"":    0x02cc5d05,
		"a":   0x550d7456,
		"abc": 0x32d153ff,
		"Nobody inspects the spammish repetition": 0xe2293b2f,
	} {
		if got := checksum32([]byte(in)); got != want {
			t.Errorf("xxh32(%q) = %08x, want %08x", in, got, want)
		}
	}
	// Streaming in pieces gives the same sum.
	data := sample(100000, 1)
	var h xxh32
	h.reset()
	for p := data; len(p) > 0; {
		k := min(len(p), 1+len(p)%37)
		h.write(p[:k])
		p = p[k:]
	}
	if h.sum() != checksum32(data) {
		t.Fatal("streamed and one-shot sums differ")
	}
}

// Frames from pierrec/lz4's writer, with every block size and checksum option, in reads of
// every size, concatenated.
func TestPierrecFrames(t *testing.T) {
	data := sample(3<<20, 2)
	for _, bs := range []lz4.BlockSize{lz4.Block64Kb, lz4.Block256Kb, lz4.Block1Mb, lz4.Block4Mb} {
		for _, sums := range []bool{false, true} {
			frame := pierrecFrame(t, data, lz4.BlockSizeOption(bs), lz4.ChecksumOption(sums),
				lz4.BlockChecksumOption(sums), lz4.SizeOption(uint64(len(data))))
			for name, r := range map[string]io.Reader{
				"whole":    bytes.NewReader(frame),
				"one byte": iotest.OneByteReader(bytes.NewReader(frame)),
				"half":     iotest.HalfReader(bytes.NewReader(frame)),
			} {
				got, err := decode(t, r)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("block size %v, checksums %v, %s reads: %d bytes, %v", bs, sums, name, len(got), err)
				}
			}
		}
	}
	two := append(pierrecFrame(t, data[:1000]), pierrecFrame(t, data[1000:])...)
	// A skippable frame in between is skipped.
	skip := binary.LittleEndian.AppendUint32(nil, 0x184D2A5A)
	skip = binary.LittleEndian.AppendUint32(skip, 3)
	skip = append(skip, "xyz"...)
	three := append(append(pierrecFrame(t, data[:5]), skip...), pierrecFrame(t, data[5:])...)
	for _, in := range [][]byte{two, three} {
		if got, err := decode(t, bytes.NewReader(in)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("concatenated frames: %d bytes, %v", len(got), err)
		}
	}
}

// Linked blocks, as PostgreSQL writes them (LZ4F's default), made by the lz4 command.
func TestLinkedBlocksFromLZ4Command(t *testing.T) {
	if _, err := exec.LookPath("lz4"); err != nil {
		t.Fatalf("the lz4 command is needed (scripts/setup.sh installs it): %v", err)
	}
	data := sample(5<<20, 3)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-BD", "-B5"},
		{"-BD", "-B4", "-BX"},
		{"-BD", "-B6", "--content-size", "-9"},
		{"-BD", "-B7", "--no-frame-crc"},
		{"-BI", "-B5"},
	} {
		out := filepath.Join(dir, "out.lz4")
		cmd := exec.Command("lz4", append(append([]string{"-q", "-f"}, args...), in, out)...)
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lz4 %v: %v %s", args, err, o)
		}
		frame, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if args[0] == "-BD" && frame[4]&0x20 != 0 {
			t.Fatalf("lz4 %v wrote independent blocks", args)
		}
		got, err := decode(t, iotest.HalfReader(bytes.NewReader(frame)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("lz4 %v: %d of %d bytes, %v", args, len(got), len(data), err)
		}
	}
}

func TestMalformed(t *testing.T) {
	data := sample(600<<10, 4)
	good := pierrecFrame(t, data, lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(true))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	hugeBlock := bytes.Clone(good[:7])
	hugeBlock = binary.LittleEndian.AppendUint32(hugeBlock, 70<<10)
	// A block whose first match reaches back before the frame: token 0x00 (no literals,
	// match length 4), offset 1.
	badMatch := bytes.Clone(good[:7])
	badMatch = binary.LittleEndian.AppendUint32(badMatch, 4)
	badMatch = append(badMatch, 0x00, 0x01, 0x00, 0x00)
	dict := []byte{0x04, 0x22, 0x4d, 0x18, 0x61, 0x40}
	for name, c := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":              {nil, "empty input"},
		"not lz4":            {[]byte("PGDMP custom dump"), "magic number"},
		"truncated header":   {good[:5], "inside a frame descriptor"},
		"truncated block":    {good[:200], "inside a block"},
		"no end mark":        {good[:len(good)-8], "inside"},
		"header checksum":    {flip(6), "frame header checksum"},
		"content corrupted":  {flip(len(good) / 2), ""},
		"content checksum":   {flip(len(good) - 1), "content checksum"},
		"block too large":    {hugeBlock, "block of 71680 bytes"},
		"match before start": {badMatch, "before the 0 bytes of history"},
		"dictionary":         {dict, "dictionary"},
		"trailing garbage":   {append(bytes.Clone(good), "junk"...), "magic number"},
	} {
		got, err := decode(t, bytes.NewReader(c.in))
		if err == nil {
			t.Errorf("%s: no error (%d bytes)", name, len(got))
			continue
		}
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrFormat mentioning %q", name, err, c.want)
		}
	}
	// The source's own errors come back unchanged.
	boom := errors.New("connection reset")
	_, err := decode(t, io.MultiReader(bytes.NewReader(good[:100]), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || errors.Is(err, ErrFormat) {
		t.Fatalf("source error came back as %v", err)
	}
}

// repeatedFrames is an endless stream of the same frame, as a long backup is.
type repeatedFrames struct {
	frame []byte
	off   int
}

func (r *repeatedFrames) Read(p []byte) (int, error) {
	n := copy(p, r.frame[r.off:])
	r.off = (r.off + n) % len(r.frame)
	return n, nil
}

// Decoding allocates nothing once the buffers exist, whatever the number of blocks and frames.
func TestNoAllocsPerBlock(t *testing.T) {
	data := sample(2<<20, 5)
	frame := pierrecFrame(t, data, lz4.BlockSizeOption(lz4.Block256Kb), lz4.ChecksumOption(true))
	z := NewReader(&repeatedFrames{frame: frame})
	buf := make([]byte, 300<<10)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := io.ReadFull(z, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per 300 KB read", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, kind := range []string{"sample", "pgbench-like"} {
		data := sample(8<<20, 6)
		if kind == "pgbench-like" {
			data = bytes.Repeat([]byte("    1 |        1 |        0 |                                                                                    \n"), (8<<20)/105)
		}
		frame := pierrecFrame(b, data, lz4.BlockSizeOption(lz4.Block256Kb))
		b.Run(kind, func(b *testing.B) {
			z := NewReader(nil)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				z.Reset(bytes.NewReader(frame))
				if _, err := io.Copy(io.Discard, z); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kind+"/pierrec", func(b *testing.B) {
			zr := lz4.NewReader(nil)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				zr.Reset(bytes.NewReader(frame))
				if _, err := io.Copy(io.Discard, struct{ io.Reader }{zr}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzRoundTrip: whatever pierrec/lz4 compresses, with any block size and checksums, comes
// back byte for byte.
func FuzzRoundTrip(f *testing.F) {
	f.Add(sample(5000, 8), uint8(0), true)
	f.Add([]byte{}, uint8(1), false)
	f.Add(bytes.Repeat([]byte{'a'}, 70000), uint8(2), true)
	f.Fuzz(func(t *testing.T, data []byte, bs uint8, sums bool) {
		size := []lz4.BlockSize{lz4.Block64Kb, lz4.Block256Kb, lz4.Block1Mb, lz4.Block4Mb}[bs%4]
		frame := pierrecFrame(t, data, lz4.BlockSizeOption(size), lz4.ChecksumOption(sums), lz4.BlockChecksumOption(sums))
		got, err := decode(t, iotest.HalfReader(bytes.NewReader(frame)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d of %d bytes back, %v", len(got), len(data), err)
		}
	})
}

// FuzzDecode: arbitrary input never panics or loops, and what decodes without error agrees
// with pierrec/lz4 when that decodes it too.
func FuzzDecode(f *testing.F) {
	f.Add(pierrecFrame(f, sample(3000, 9)))
	f.Add(pierrecFrame(f, []byte("hello hello hello hello"), lz4.ChecksumOption(false)))
	f.Add([]byte{0x04, 0x22, 0x4d, 0x18, 0x40, 0x50, 0x77, 4, 0, 0, 0, 0x00, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := decode(t, bytes.NewReader(in))
		if err != nil {
			return
		}
		want, perr := io.ReadAll(lz4.NewReader(bytes.NewReader(in)))
		if perr == nil && !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, pierrec/lz4 %d, and they differ", len(got), len(want))
		}
	})
}
