package pgformat

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxManifestSize is the largest backup_manifest ParseManifest accepts by default (the
// whole manifest is held in memory; a cluster of a million files has one of about 200 MB).
const MaxManifestSize = 1 << 30

// MaxManifestPath bounds a path in a manifest (PostgreSQL's MAXPGPATH is 1024).
const MaxManifestPath = 4096

// Manifest is a parsed backup_manifest (PostgreSQL-Backup-Manifest-Version 1 or 2).
type Manifest struct {
	// Version is PostgreSQL-Backup-Manifest-Version: 1 (15, 16), or 2 from 17 on.
	Version int
	// SystemIdentifier is the cluster's system identifier (version 2 only; 0 otherwise).
	SystemIdentifier uint64
	// Files are the files of the backup in the order the server listed them.
	Files []ManifestFile
	// WALRanges are the WAL ranges, newest timeline first, as the server lists them.
	WALRanges []WALRange
	// Checksum is the Manifest-Checksum (hex SHA-256).
	Checksum string
}

// ManifestFile is one entry of a manifest's Files list.
type ManifestFile struct {
	// Path is the file's path relative to the data directory (decoded from Encoded-Path
	// when the server hex-encoded it).
	Path string
	// Size is the number of bytes the server sent.
	Size int64
	// LastModified is the server's "2006-01-02 15:04:05 GMT" string.
	LastModified string
	// Algorithm is the Checksum-Algorithm ("" when the manifest has no checksum for it).
	Algorithm string
	// Checksum is the lower-case hex checksum ("" when none).
	Checksum string
}

// WALRange is one entry of a manifest's WAL-Ranges list.
type WALRange struct {
	Timeline   uint32
	Start, End LSN
}

// StartLSN returns the start of the oldest WAL range (the backup's start LSN).
func (m *Manifest) StartLSN() LSN {
	if len(m.WALRanges) == 0 {
		return 0
	}
	return m.WALRanges[len(m.WALRanges)-1].Start
}

// EndLSN returns the end of the newest WAL range (the backup's end LSN).
func (m *Manifest) EndLSN() LSN {
	if len(m.WALRanges) == 0 {
		return 0
	}
	return m.WALRanges[0].End
}

type rawManifest struct {
	Version          *int       `json:"PostgreSQL-Backup-Manifest-Version"`
	SystemIdentifier *uint64    `json:"System-Identifier"`
	Files            []rawFile  `json:"Files"`
	WALRanges        []rawRange `json:"WAL-Ranges"`
	ManifestChecksum *string    `json:"Manifest-Checksum"`
}

type rawFile struct {
	Path         *string `json:"Path"`
	EncodedPath  *string `json:"Encoded-Path"`
	Size         *int64  `json:"Size"`
	LastModified *string `json:"Last-Modified"`
	Algorithm    *string `json:"Checksum-Algorithm"`
	Checksum     *string `json:"Checksum"`
}

type rawRange struct {
	Timeline *uint32 `json:"Timeline"`
	StartLSN *string `json:"Start-LSN"`
	EndLSN   *string `json:"End-LSN"`
}

// ErrManifestChecksum is wrapped by ParseManifest's error when the Manifest-Checksum does
// not match the manifest's content.
var ErrManifestChecksum = errors.New("manifest checksum mismatch")

// ErrManifestTooLarge is wrapped by the error of ReadManifest and ParseManifest when the
// manifest exceeds the size limit.
var ErrManifestTooLarge = errors.New("manifest too large")

// ReadManifest reads at most limit bytes (MaxManifestSize when limit <= 0) of a
// backup_manifest from r and parses it with ParseManifest. It returns the bytes too: an
// incremental backup uploads them unchanged.
func ReadManifest(r io.Reader, limit int64) (*Manifest, []byte, error) {
	if limit <= 0 {
		limit = MaxManifestSize
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrManifestTooLarge, limit)
	}
	m, err := ParseManifest(data)
	return m, data, err
}

// ParseManifest parses a backup_manifest and checks its Manifest-Checksum, with the rules
// of pg_verifybackup: known fields only, Path or Encoded-Path (hex) per file, no path twice,
// a checksum of the length its algorithm gives, one WAL range per timeline; the checksum is
// the SHA-256 of every byte up to and including the newline before the last line, and the
// manifest ends with a newline. When only the checksum is wrong the parsed manifest is
// returned with an error wrapping ErrManifestChecksum.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrManifestTooLarge, MaxManifestSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("manifest is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw rawManifest
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("manifest is not valid: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("manifest has data after its JSON object")
	}
	m := &Manifest{}
	if raw.Version == nil {
		return nil, errors.New("manifest has no PostgreSQL-Backup-Manifest-Version")
	}
	m.Version = *raw.Version
	if m.Version != 1 && m.Version != 2 {
		return nil, fmt.Errorf("unsupported manifest version %d", m.Version)
	}
	if raw.SystemIdentifier != nil {
		if m.Version < 2 {
			return nil, errors.New("manifest version 1 has a System-Identifier")
		}
		m.SystemIdentifier = *raw.SystemIdentifier
	} else if m.Version >= 2 {
		return nil, errors.New("manifest version 2 has no System-Identifier")
	}
	if raw.Files == nil {
		return nil, errors.New("manifest has no Files")
	}
	if raw.WALRanges == nil {
		return nil, errors.New("manifest has no WAL-Ranges")
	}
	if raw.ManifestChecksum == nil {
		return nil, errors.New("manifest has no Manifest-Checksum")
	}
	m.Checksum = *raw.ManifestChecksum
	seen := make(map[string]bool, len(raw.Files))
	m.Files = make([]ManifestFile, 0, len(raw.Files))
	for i, f := range raw.Files {
		mf, err := f.parse(i)
		if err != nil {
			return nil, err
		}
		if seen[mf.Path] {
			return nil, fmt.Errorf("manifest lists %q twice", mf.Path)
		}
		seen[mf.Path] = true
		m.Files = append(m.Files, mf)
	}
	for i, r := range raw.WALRanges {
		if r.Timeline == nil || r.StartLSN == nil || r.EndLSN == nil {
			return nil, fmt.Errorf("manifest WAL range %d lacks Timeline, Start-LSN or End-LSN", i)
		}
		start, err := ParseLSN(*r.StartLSN)
		if err != nil {
			return nil, fmt.Errorf("manifest WAL range %d: %v", i, err)
		}
		end, err := ParseLSN(*r.EndLSN)
		if err != nil {
			return nil, fmt.Errorf("manifest WAL range %d: %v", i, err)
		}
		if *r.Timeline == 0 || end < start {
			return nil, fmt.Errorf("manifest WAL range %d is invalid (timeline %d, %s..%s)", i, *r.Timeline, start, end)
		}
		for _, o := range m.WALRanges {
			if o.Timeline == *r.Timeline {
				return nil, fmt.Errorf("manifest lists timeline %d twice in WAL-Ranges", o.Timeline)
			}
		}
		m.WALRanges = append(m.WALRanges, WALRange{Timeline: *r.Timeline, Start: start, End: end})
	}
	if len(m.WALRanges) == 0 {
		return m, errors.New("manifest has an empty WAL-Ranges list")
	}
	if err := CheckManifestChecksum(data, m.Checksum); err != nil {
		return m, err
	}
	return m, nil
}

func (f *rawFile) parse(i int) (ManifestFile, error) {
	var mf ManifestFile
	switch {
	case f.Path != nil && f.EncodedPath != nil:
		return mf, fmt.Errorf("manifest file %d has both Path and Encoded-Path", i)
	case f.Path != nil:
		mf.Path = *f.Path
	case f.EncodedPath != nil:
		if len(*f.EncodedPath) > 2*MaxManifestPath {
			return mf, fmt.Errorf("manifest file %d: Encoded-Path longer than %d bytes", i, MaxManifestPath)
		}
		b, err := hex.DecodeString(*f.EncodedPath)
		if err != nil {
			return mf, fmt.Errorf("manifest file %d: invalid Encoded-Path: %v", i, err)
		}
		mf.Path = string(b)
	default:
		return mf, fmt.Errorf("manifest file %d has no Path", i)
	}
	if mf.Path == "" {
		return mf, fmt.Errorf("manifest file %d has an empty path", i)
	}
	if len(mf.Path) > MaxManifestPath {
		return mf, fmt.Errorf("manifest file %d: path longer than %d bytes", i, MaxManifestPath)
	}
	if f.Size == nil || *f.Size < 0 {
		return mf, fmt.Errorf("manifest file %q has no valid Size", mf.Path)
	}
	mf.Size = *f.Size
	if f.LastModified == nil {
		return mf, fmt.Errorf("manifest file %q has no Last-Modified", mf.Path)
	}
	mf.LastModified = *f.LastModified
	if (f.Algorithm == nil) != (f.Checksum == nil) {
		return mf, fmt.Errorf("manifest file %q: Checksum-Algorithm and Checksum must come together", mf.Path)
	}
	if f.Algorithm != nil && !strings.EqualFold(*f.Algorithm, ChecksumNone) {
		alg := strings.ToUpper(*f.Algorithm)
		n := ChecksumHexLen(alg)
		if n == 0 {
			return mf, fmt.Errorf("manifest file %q: unknown checksum algorithm %q", mf.Path, *f.Algorithm)
		}
		sum := strings.ToLower(*f.Checksum)
		if len(sum) != n {
			return mf, fmt.Errorf("manifest file %q: %s checksum %q has the wrong length", mf.Path, alg, *f.Checksum)
		}
		if _, err := hex.DecodeString(sum); err != nil {
			return mf, fmt.Errorf("manifest file %q: invalid checksum %q", mf.Path, *f.Checksum)
		}
		mf.Algorithm, mf.Checksum = alg, sum
	}
	return mf, nil
}

// CheckManifestChecksum applies pg_verifybackup's verify_manifest_checksum to a whole
// manifest: want must be the hex SHA-256 of every byte up to and including the newline
// before the last line, and the manifest must end with a newline.
func CheckManifestChecksum(data []byte, want string) error {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return errors.New("manifest does not end with a newline")
	}
	nl := bytes.LastIndexByte(data[:len(data)-1], '\n')
	if nl < 0 {
		return errors.New("manifest has fewer than 2 lines")
	}
	if len(want) != 64 {
		return fmt.Errorf("%w: Manifest-Checksum %q is not a SHA-256", ErrManifestChecksum, want)
	}
	sum := sha256.Sum256(data[:nl+1])
	got := hex.EncodeToString(sum[:])
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: the manifest says %s, its content hashes to %s", ErrManifestChecksum, strings.ToLower(want), got)
	}
	return nil
}
