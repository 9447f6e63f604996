package lz4frame

import (
	"encoding/binary"
	"math/bits"
)

// xxHash32 with seed 0, the checksum of the LZ4 frame format.

const (
	prime1 uint32 = 2654435761
	prime2 uint32 = 2246822519
	prime3 uint32 = 3266489917
	prime4 uint32 = 668265263
	prime5 uint32 = 374761393
)

// xxh32 is a streaming xxHash32 (seed 0).
type xxh32 struct {
	v     [4]uint32
	total uint64
	buf   [16]byte
	n     int // bytes in buf
}

func (h *xxh32) reset() {
	h.v = [4]uint32{606290984, prime2, 0, 1640531535} // prime1+prime2 and 0-prime1, mod 2^32
	h.total = 0
	h.n = 0
}

func round(v, lane uint32) uint32 {
	return bits.RotateLeft32(v+lane*prime2, 13) * prime1
}

func (h *xxh32) stripe(b []byte) {
	h.v[0] = round(h.v[0], binary.LittleEndian.Uint32(b[0:]))
	h.v[1] = round(h.v[1], binary.LittleEndian.Uint32(b[4:]))
	h.v[2] = round(h.v[2], binary.LittleEndian.Uint32(b[8:]))
	h.v[3] = round(h.v[3], binary.LittleEndian.Uint32(b[12:]))
}

func (h *xxh32) write(p []byte) {
	h.total += uint64(len(p))
	if h.n > 0 {
		k := copy(h.buf[h.n:], p)
		h.n += k
		p = p[k:]
		if h.n < 16 {
			return
		}
		h.stripe(h.buf[:])
		h.n = 0
	}
	for len(p) >= 16 {
		h.stripe(p[:16])
		p = p[16:]
	}
	h.n = copy(h.buf[:], p)
}

func (h *xxh32) sum() uint32 {
	var acc uint32
	if h.total >= 16 {
		acc = bits.RotateLeft32(h.v[0], 1) + bits.RotateLeft32(h.v[1], 7) +
			bits.RotateLeft32(h.v[2], 12) + bits.RotateLeft32(h.v[3], 18)
	} else {
		acc = prime5
	}
	acc += uint32(h.total)
	p := h.buf[:h.n]
	for len(p) >= 4 {
		acc = bits.RotateLeft32(acc+binary.LittleEndian.Uint32(p)*prime3, 17) * prime4
		p = p[4:]
	}
	for _, b := range p {
		acc = bits.RotateLeft32(acc+uint32(b)*prime5, 11) * prime1
	}
	acc ^= acc >> 15
	acc *= prime2
	acc ^= acc >> 13
	acc *= prime3
	acc ^= acc >> 16
	return acc
}

// checksum32 is the xxHash32 of b.
func checksum32(b []byte) uint32 {
	var h xxh32
	h.reset()
	h.write(b)
	return h.sum()
}
