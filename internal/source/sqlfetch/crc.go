package sqlfetch

// CRC-32C of a file from the CRC-32C of its pieces, computed apart (by the readers, in any
// order): crc(A || B) = crc(A) x x^(8 len(B)) mod P xor crc(B), for the CRC as hash/crc32
// computes it (pre- and post-inverted), since the inversions of A's start and B's start cancel
// out in the linear part. Polynomials are in the reflected bit order hash/crc32 uses: bit 31
// is x^0, bit 0 is x^31.

// castagnoliReflected is the Castagnoli polynomial (0x1EDC6F41) reflected.
const castagnoliReflected = 0x82F63B78

// gfMul returns a x b mod P.
func gfMul(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// x2k[k] is x^(2^k) mod P.
var x2k = func() (t [64]uint32) {
	t[0] = 1 << 30 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = gfMul(t[k-1], t[k-1])
	}
	return t
}()

// xPow8 returns x^(8n) mod P.
func xPow8(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = gfMul(x2k[k%len(x2k)], p)
		}
	}
	return p
}

// crc32cCombine returns the CRC-32C of A || B from crcA, crcB and the length of B.
func crc32cCombine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB == 0 {
		return crcA
	}
	return gfMul(xPow8(lenB), crcA) ^ crcB
}
