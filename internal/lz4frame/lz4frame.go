// Package lz4frame decompresses LZ4 frame streams as PostgreSQL's server-side lz4 compression
// writes them (BASE_BACKUP ... COMPRESSION 'lz4'): one frame per archive, 256 KB blocks, each
// block allowed to refer to the 64 KB decoded before it ("linked" blocks).
//
// It exists because the general-purpose decoder walweave otherwise uses (pierrec/lz4) keeps
// the dictionary of linked blocks by re-allocating it for every block: on a 1.5 GiB backup that
// was ~1.5 GB of garbage, 39 collections a second and 67 MiB of peak RSS instead of 29. This
// Reader decodes every block into one window buffer, allocated once and reused for every frame
// and archive (Reset), and moves only the last 64 KB when the window is full.
//
// Everything in the frame format is handled: concatenated and skippable frames, independent
// and linked blocks, block sizes 64 KB to 4 MB, uncompressed blocks, the header checksum, block
// and content checksums (xxHash32) and the content size. Frames that need an external
// dictionary (a dictionary ID) are refused. Malformed input gives an error that says what and
// where; memory is bounded by the block size the frame declares (at most 4 MB).
package lz4frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	frameMagic        = 0x184D2204
	skippableMagicMin = 0x184D2A50
	skippableMagicMax = 0x184D2A5F

	historySize = 64 << 10 // how far back a match may reach
	maxBlock    = 4 << 20
	minWindow   = 1 << 20 // decoded blocks accumulate here before history is moved down
)

// ErrFormat is wrapped by every error about malformed input.
var ErrFormat = errors.New("lz4frame: malformed LZ4 stream")

// Reader decompresses a stream of LZ4 frames.
type Reader struct {
	src io.Reader
	off int64 // input offset, for messages

	in  []byte // compressed block (+ checksum)
	win []byte // decoded bytes: history, then blocks not yet read
	r   int    // win[r:w] is decoded and not yet returned
	w   int

	// Current frame.
	inFrame       bool
	blockMax      int
	independent   bool
	blockChecksum bool
	contentSum    bool
	contentSize   int64 // -1 when the frame does not declare it
	produced      int64 // bytes decoded in this frame
	hash          xxh32 // of the frame's content, when contentSum
	frames        int   // frames started since Reset

	scratch [16]byte // headers and checksums are read here (a local array would escape)

	err error
}

// NewReader returns a Reader decompressing the frames read from src.
func NewReader(src io.Reader) *Reader {
	z := &Reader{}
	z.Reset(src)
	return z
}

// Reset makes z read a new stream from src, keeping its buffers.
func (z *Reader) Reset(src io.Reader) {
	z.src = src
	z.off = 0
	z.r, z.w = 0, 0
	z.inFrame = false
	z.frames = 0
	z.err = nil
}

func (z *Reader) formatErr(off int64, format string, args ...any) error {
	return fmt.Errorf("%w at compressed offset %d: %s", ErrFormat, off, fmt.Sprintf(format, args...))
}

// readFull reads len(p) bytes; io.EOF only if none were there, else ErrUnexpectedEOF.
func (z *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(z.src, p)
	z.off += int64(n)
	return err
}

// Read reads decompressed bytes. It returns io.EOF after the last frame, at the end of the
// input; input ending inside a frame is an error wrapping io.ErrUnexpectedEOF.
func (z *Reader) Read(p []byte) (int, error) {
	for z.r == z.w {
		if z.err != nil {
			return 0, z.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if err := z.next(); err != nil {
			z.err = err
		}
	}
	n := copy(p, z.win[z.r:z.w])
	z.r += n
	return n, nil
}

// next decodes the next block, or reads the next frame header, or ends the frame.
func (z *Reader) next() error {
	if !z.inFrame {
		return z.startFrame()
	}
	hdr := z.scratch[:4]
	at := z.off
	if err := z.readFull(hdr); err != nil {
		return z.truncated(err, "a block header")
	}
	size := binary.LittleEndian.Uint32(hdr)
	if size == 0 {
		return z.endFrame()
	}
	stored := size&(1<<31) != 0
	size &^= 1 << 31
	if int(size) > z.blockMax {
		return z.formatErr(at, "block of %d bytes in a frame of %d-byte blocks", size, z.blockMax)
	}
	n := int(size)
	if z.blockChecksum {
		n += 4
	}
	if err := z.readFull(z.in[:n]); err != nil {
		return z.truncated(err, "a block")
	}
	data := z.in[:size]
	if z.blockChecksum {
		if want, got := binary.LittleEndian.Uint32(z.in[size:n]), checksum32(data); want != got {
			return z.formatErr(at, "block checksum %08x, the block's data hashes to %08x", want, got)
		}
	}
	z.makeRoom()
	var k int
	if stored {
		k = copy(z.win[z.w:z.w+z.blockMax], data)
	} else {
		var err error
		k, err = decodeBlock(z.win[:z.w+z.blockMax], z.w, z.historyStart(), data)
		if err != nil {
			return z.formatErr(at, "block: %v", err)
		}
	}
	if z.contentSum {
		z.hash.write(z.win[z.w : z.w+k])
	}
	z.w += k
	z.produced += int64(k)
	return nil
}

// historyStart is the lowest window index a match of the next block may reach.
func (z *Reader) historyStart() int {
	if z.independent {
		return z.w
	}
	return 0
}

// makeRoom makes sure a whole block fits after w, keeping the history a linked block needs.
func (z *Reader) makeRoom() {
	if z.w+z.blockMax <= len(z.win) {
		if z.independent && z.r == z.w {
			z.r, z.w = 0, 0
		}
		return
	}
	keep := 0
	if !z.independent {
		keep = min(historySize, z.w)
	}
	// Everything before r was read; what the Reader must still return (r..w) is empty here,
	// because next is only called when it is.
	copy(z.win, z.win[z.w-keep:z.w])
	z.r, z.w = keep, keep
}

func (z *Reader) startFrame() error {
	at := z.off
	hdr := z.scratch[:4]
	if err := z.readFull(hdr[:4]); err != nil {
		if err == io.EOF {
			if z.frames == 0 {
				return z.formatErr(at, "empty input: no LZ4 frame")
			}
			return io.EOF
		}
		return z.truncated(err, "a frame's magic number")
	}
	magic := binary.LittleEndian.Uint32(hdr[:4])
	if magic >= skippableMagicMin && magic <= skippableMagicMax {
		if err := z.readFull(hdr[:4]); err != nil {
			return z.truncated(err, "a skippable frame's size")
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		k, err := io.CopyN(io.Discard, z.src, n)
		z.off += k
		if err != nil {
			return z.truncated(err, "a skippable frame")
		}
		z.frames++
		return nil
	}
	if magic != frameMagic {
		return z.formatErr(at, "magic number %08x is not an LZ4 frame's (%08x)", magic, frameMagic)
	}
	if err := z.readFull(hdr[:2]); err != nil {
		return z.truncated(err, "a frame descriptor")
	}
	flg, bd := hdr[0], hdr[1]
	if flg>>6 != 1 {
		return z.formatErr(at+4, "frame version %d, want 1", flg>>6)
	}
	if flg&0x02 != 0 || bd&0x8f != 0 {
		return z.formatErr(at+4, "reserved bits set in the frame descriptor (%02x %02x)", flg, bd)
	}
	if flg&0x01 != 0 {
		return z.formatErr(at+4, "the frame needs a dictionary (dictionary ID flag set)")
	}
	sizeID := int(bd>>4) & 7
	if sizeID < 4 {
		return z.formatErr(at+5, "block maximum size ID %d (valid: 4-7)", sizeID)
	}
	desc := hdr[:2]
	sizeField := z.scratch[4:12]
	z.contentSize = -1
	if flg&0x08 != 0 {
		if err := z.readFull(sizeField); err != nil {
			return z.truncated(err, "a frame's content size")
		}
		z.contentSize = int64(binary.LittleEndian.Uint64(sizeField))
	}
	hc := z.scratch[12:13]
	if err := z.readFull(hc); err != nil {
		return z.truncated(err, "a frame header checksum")
	}
	h := &z.hash // reset below for the content
	h.reset()
	h.write(desc)
	if z.contentSize >= 0 {
		h.write(sizeField)
	}
	if want := byte(h.sum() >> 8); hc[0] != want {
		return z.formatErr(at, "frame header checksum %02x, want %02x", hc[0], want)
	}
	z.blockMax = 1 << (8 + 2*sizeID)
	z.independent = flg&0x20 != 0
	z.blockChecksum = flg&0x10 != 0
	z.contentSum = flg&0x04 != 0
	z.produced = 0
	z.hash.reset()
	if need := z.blockMax + 4; len(z.in) < need {
		z.in = make([]byte, need)
	}
	if need := max(minWindow, historySize+2*z.blockMax); len(z.win) < need {
		z.win = make([]byte, need)
	}
	// A new frame starts without history.
	z.r, z.w = 0, 0
	z.inFrame = true
	z.frames++
	return nil
}

func (z *Reader) endFrame() error {
	at := z.off
	if z.contentSum {
		sum := z.scratch[:4]
		if err := z.readFull(sum); err != nil {
			return z.truncated(err, "a frame's content checksum")
		}
		if want, got := binary.LittleEndian.Uint32(sum), z.hash.sum(); want != got {
			return z.formatErr(at, "content checksum %08x, the frame's content hashes to %08x", want, got)
		}
	}
	if z.contentSize >= 0 && z.contentSize != z.produced {
		return z.formatErr(at, "the frame declares %d bytes of content and holds %d", z.contentSize, z.produced)
	}
	z.inFrame = false
	return nil
}

func (z *Reader) truncated(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: input ends inside %s at compressed offset %d: %w", ErrFormat, what, z.off, io.ErrUnexpectedEOF)
	}
	return err
}

// decodeBlock decodes one LZ4 block from src into dst[d:], whose matches may reach back to
// dst[lo:]. It returns the number of bytes decoded. dst's length bounds the output.
func decodeBlock(dst []byte, d, lo int, src []byte) (int, error) {
	start := d
	s := 0
	for {
		if s >= len(src) {
			return 0, errors.New("ends without a last literal run")
		}
		token := src[s]
		s++
		lit := int(token >> 4)
		if lit == 15 {
			var ok bool
			if lit, s, ok = extendLength(src, s, lit); !ok {
				return 0, errors.New("literal length runs past the end")
			}
		}
		if lit > len(src)-s {
			return 0, fmt.Errorf("literal run of %d bytes with %d left in the block", lit, len(src)-s)
		}
		if lit > len(dst)-d {
			return 0, errors.New("decodes to more than the block size")
		}
		copy(dst[d:], src[s:s+lit])
		d += lit
		s += lit
		if s == len(src) {
			return d - start, nil // the last sequence has no match
		}
		if len(src)-s < 2 {
			return 0, errors.New("match offset runs past the end")
		}
		offset := int(src[s]) | int(src[s+1])<<8
		s += 2
		if offset == 0 {
			return 0, errors.New("match offset 0")
		}
		if offset > d-lo {
			return 0, fmt.Errorf("match offset %d reaches before the %d bytes of history", offset, d-lo)
		}
		ml := int(token&15) + 4
		if token&15 == 15 {
			var ok bool
			if ml, s, ok = extendLength(src, s, ml); !ok {
				return 0, errors.New("match length runs past the end")
			}
		}
		if ml > len(dst)-d {
			return 0, errors.New("decodes to more than the block size")
		}
		from := d - offset
		if offset >= ml {
			copy(dst[d:d+ml], dst[from:from+ml])
		} else {
			// Overlapping: the match repeats the last offset bytes. Copy in growing chunks.
			end := d + ml
			for d < end {
				n := copy(dst[d:end], dst[from:d])
				d += n
			}
			continue
		}
		d += ml
	}
}

// extendLength adds the length extension at src[s:] (bytes of 255, then one below 255) to n;
// ok is false if the block ends first.
func extendLength(src []byte, s, n int) (_ int, _ int, ok bool) {
	for s < len(src) {
		b := src[s]
		s++
		n += int(b)
		if b != 255 {
			return n, s, true
		}
	}
	return n, s, false
}
