package pgformat

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"strings"
)

// Checksum algorithm names, as a manifest's Checksum-Algorithm and BASE_BACKUP's
// MANIFEST_CHECKSUMS spell them.
const (
	ChecksumNone   = "NONE"
	ChecksumCRC32C = "CRC32C"
	ChecksumSHA224 = "SHA224"
	ChecksumSHA256 = "SHA256"
	ChecksumSHA384 = "SHA384"
	ChecksumSHA512 = "SHA512"
)

// ChecksumAlgorithms lists the algorithm names in the server's order.
var ChecksumAlgorithms = []string{ChecksumNone, ChecksumCRC32C, ChecksumSHA224, ChecksumSHA256, ChecksumSHA384, ChecksumSHA512}

// CanonicalChecksum returns the canonical name of a checksum algorithm given in any case
// ("sha256" -> "SHA256"; "SHA-256" is accepted too), or an error naming the choices.
func CanonicalChecksum(name string) (string, error) {
	up := strings.ToUpper(strings.ReplaceAll(name, "-", ""))
	for _, a := range ChecksumAlgorithms {
		if up == a {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown checksum algorithm %q (want NONE, CRC32C, SHA224, SHA256, SHA384 or SHA512)", name)
}

// ChecksumHexLen returns the length of the hex form of a checksum of algorithm alg (0 for
// NONE or an unknown name).
func ChecksumHexLen(alg string) int {
	switch alg {
	case ChecksumCRC32C:
		return 8
	case ChecksumSHA224:
		return 56
	case ChecksumSHA256:
		return 64
	case ChecksumSHA384:
		return 96
	case ChecksumSHA512:
		return 128
	}
	return 0
}

// Castagnoli is the CRC-32C table (pg_control, manifests, WAL records).
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewChecksum returns a hash for algorithm alg (a canonical name, see CanonicalChecksum)
// whose Sum appends the bytes the server hex-encodes into a manifest: for CRC32C the
// uint32 in little-endian byte order (the server prints its native, x86 byte order: CRC
// 0x2247748a is written "8a744722"), for the SHA-2 algorithms the digest. NONE is an error:
// there is nothing to compute.
func NewChecksum(alg string) (hash.Hash, error) {
	switch alg {
	case ChecksumCRC32C:
		return &crc32cLE{}, nil
	case ChecksumSHA224:
		return sha256.New224(), nil
	case ChecksumSHA256:
		return sha256.New(), nil
	case ChecksumSHA384:
		return sha512.New384(), nil
	case ChecksumSHA512:
		return sha512.New(), nil
	case ChecksumNone:
		return nil, fmt.Errorf("checksum algorithm NONE computes nothing")
	}
	return nil, fmt.Errorf("unknown checksum algorithm %q (want CRC32C, SHA224, SHA256, SHA384 or SHA512)", alg)
}

// ChecksumHex returns the lower-case hex of h.Sum, the form a manifest's Checksum has.
func ChecksumHex(h hash.Hash) string {
	var b [64]byte
	return hex.EncodeToString(h.Sum(b[:0]))
}

// CRC32CHex returns the manifest form of a CRC-32C value ("8a744722" for 0x2247748a).
func CRC32CHex(crc uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], crc)
	return hex.EncodeToString(b[:])
}

// crc32cLE is CRC-32C with a little-endian Sum.
type crc32cLE struct{ crc uint32 }

func (c *crc32cLE) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, Castagnoli, p)
	return len(p), nil
}
func (c *crc32cLE) Sum(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, c.crc) }
func (c *crc32cLE) Reset()              { c.crc = 0 }
func (c *crc32cLE) Size() int           { return 4 }
func (c *crc32cLE) BlockSize() int      { return 1 }
func (c *crc32cLE) Sum32() uint32       { return c.crc }
