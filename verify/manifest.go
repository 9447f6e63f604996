package verify

import "github.com/walweave/walweave/pgformat"

// MaxManifestSize is the largest backup_manifest Stream accepts (it is held in memory).
const MaxManifestSize = pgformat.MaxManifestSize

// Checksum algorithm names, as they appear in a manifest's Checksum-Algorithm and as
// accepted by Options.Algorithm (pgformat's names).
const (
	AlgorithmNone   = pgformat.ChecksumNone
	AlgorithmCRC32C = pgformat.ChecksumCRC32C
	AlgorithmSHA224 = pgformat.ChecksumSHA224
	AlgorithmSHA256 = pgformat.ChecksumSHA256
	AlgorithmSHA384 = pgformat.ChecksumSHA384
	AlgorithmSHA512 = pgformat.ChecksumSHA512
)

// Manifest, ManifestFile and WALRange are pgformat's parsed backup_manifest.
type (
	Manifest     = pgformat.Manifest
	ManifestFile = pgformat.ManifestFile
	WALRange     = pgformat.WALRange
)

// ErrManifestChecksum is wrapped by ParseManifest's error when the Manifest-Checksum does
// not match the manifest's content.
var ErrManifestChecksum = pgformat.ErrManifestChecksum

// ParseManifest parses a backup_manifest and checks its Manifest-Checksum
// (pgformat.ParseManifest).
func ParseManifest(data []byte) (*Manifest, error) { return pgformat.ParseManifest(data) }
