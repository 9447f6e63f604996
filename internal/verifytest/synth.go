package verifytest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"github.com/walweave/walweave/pgformat"
	"hash"
	"hash/crc32"
	"io"
	"math/rand"
)

// SynthOptions shapes a synthetic stream.
type SynthOptions struct {
	// SegSize is the WAL segment size (default 1 MiB).
	SegSize int64
	// Files is the number of data files (default 20) and FileSize their size (default
	// 24 KiB); BigFiles more files of BigFileSize bytes whose content is generated while
	// writing (not held in memory).
	Files, FileSize         int
	BigFiles                int
	BigFileSize             int64
	WALRecords, WALMaxBytes int // default 3000 records of up to 2000 bytes
	// Switch puts an XLOG_SWITCH record in the middle of the WAL.
	Switch bool
	// Promote switches to timeline 2 in the middle of the WAL (as a promotion does): the
	// segment of the switch point comes on both timelines, the one of timeline 1
	// zero-padded after it, and 00000002.history is added.
	Promote bool
	// Tablespace adds an in-place tablespace 16384 with two files and the walweave lines
	// in postgresql.auto.conf.
	Tablespace bool
	Seed       int64
	// Algorithm is the manifest's checksum algorithm (default CRC32C; SHA256 and NONE too).
	Algorithm string
}

// SynthSysID is the system identifier of synthetic streams.
const SynthSysID = 7350000000000000001

// Synth returns a synthetic walweave-contract stream: backup_label first, data files, WAL
// segments woven in, global/pg_control last of the data, backup_manifest last, with
// CRC32C checksums and valid WAL from the start to the end LSN.
func Synth(o SynthOptions) *Stream {
	if o.SegSize == 0 {
		o.SegSize = 1 << 20
	}
	if o.Files == 0 {
		o.Files = 20
	}
	if o.FileSize == 0 {
		o.FileSize = 24 << 10
	}
	if o.WALRecords == 0 {
		o.WALRecords = 3000
	}
	if o.WALMaxBytes == 0 {
		o.WALMaxBytes = 2000
	}
	rnd := rand.New(rand.NewSource(o.Seed + 1))
	const firstSeg = 3
	g := NewWALGen(o.SegSize, SynthSysID, 1, firstSeg, o.Seed)
	g.Records(50, 300) // before the backup's start
	start, _ := g.Record(80, 0, 0x10)
	ckpt, _ := g.Record(120, 0, 0x00)
	half := o.WALRecords / 2
	g.Records(half, o.WALMaxBytes)
	if o.Switch {
		g.Record(0, 0, 0x40)
	}
	var switchPoint, switchSeg uint64
	var oldSeg []byte
	if o.Promote {
		switchPoint = g.Pos()
		switchSeg = switchPoint / uint64(o.SegSize)
		oldSeg = append([]byte(nil), g.Segment(switchSeg)...)
		clear(oldSeg[switchPoint%uint64(o.SegSize):])
		g.TLI = 2
	}
	g.Records(o.WALRecords-half, o.WALMaxBytes)
	_, end := g.Record(40, 0, 0x90) // "backup end"
	lastSeg := g.LastSeg()

	s := &Stream{}
	label := fmt.Sprintf("START WAL LOCATION: %X/%X (file %s)\nCHECKPOINT LOCATION: %X/%X\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-01-02 03:04:05 UTC\nLABEL: synthetic\nSTART TIMELINE: 1\n",
		start>>32, uint32(start), segName(1, start/uint64(o.SegSize), o.SegSize), ckpt>>32, uint32(ckpt))
	var files []ManifestFile
	add := func(m Member) {
		s.Members = append(s.Members, m)
		if m.Type == tar.TypeReg && !segRE.MatchString(m.Name) && m.Name != "backup_manifest" {
			if m.Source == nil {
				files = append(files, checksum(o.Algorithm, m.Name, m.Data))
			}
		}
	}
	addDir := func(name string) { add(Member{Name: name, Type: tar.TypeDir, Mode: 0o700}) }
	addFile := func(name string, data []byte) { add(Member{Name: name, Type: tar.TypeReg, Mode: 0o600, Data: data}) }
	addSeg := func(segno uint64) {
		switch {
		case !o.Promote || segno < switchSeg:
			addFile("pg_wal/"+segName(1, segno, o.SegSize), g.Segment(segno))
		case segno == switchSeg:
			addFile("pg_wal/"+segName(1, segno, o.SegSize), oldSeg)
			addFile("pg_wal/"+segName(2, segno, o.SegSize), g.Segment(segno))
		default:
			addFile("pg_wal/"+segName(2, segno, o.SegSize), g.Segment(segno))
		}
	}
	addFile("backup_label", []byte(label))
	addDir("base")
	addDir("base/1")
	addFile("PG_VERSION", []byte("15\n"))
	addDir("global")
	addDir("pg_wal")
	addDir("pg_wal/archive_status")
	addDir("pg_tblspc")
	segno := uint64(firstSeg)
	for i := 0; i < o.Files; i++ {
		data := make([]byte, o.FileSize)
		rnd.Read(data)
		addFile(fmt.Sprintf("base/1/%d", 16384+i), data)
		if i%5 == 0 && segno < lastSeg {
			addSeg(segno)
			segno++
		}
	}
	for i := 0; i < o.BigFiles; i++ {
		name := fmt.Sprintf("base/1/%d", 30000+i)
		seed := int64(i)
		size := o.BigFileSize
		src := func(w io.Writer) error { return bigContent(w, seed, size) }
		var h hash.Hash = crc32.New(castagnoli)
		if o.Algorithm == "SHA256" {
			h = sha256.New()
		}
		if err := bigContent(h, seed, size); err != nil {
			panic(err)
		}
		s.Members = append(s.Members, Member{Name: name, Type: tar.TypeReg, Mode: 0o600, Source: src, Size: size})
		mf := ManifestFile{Path: name, Size: size, Algorithm: "SHA256", Checksum: hex.EncodeToString(h.Sum(nil))}
		switch o.Algorithm {
		case "", "CRC32C":
			mf.Algorithm, mf.Checksum = "CRC32C", crcHex(h.(hash.Hash32).Sum32())
		case "NONE":
			mf.Algorithm, mf.Checksum = "", ""
		}
		files = append(files, mf)
		if segno < lastSeg {
			addSeg(segno)
			segno++
		}
	}
	autoConf := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"
	if o.Tablespace {
		autoConf += "# walweave: tablespace 16384 was at /srv/ts one\nallow_in_place_tablespaces = on\n"
	}
	addFile("postgresql.auto.conf", []byte(autoConf))
	control := make([]byte, 8192)
	binary.LittleEndian.PutUint64(control, SynthSysID)
	rnd.Read(control[8:64])
	addFile("global/pg_control", control)
	if o.Tablespace {
		addDir("pg_tblspc/16384")
		addDir("pg_tblspc/16384/PG_15_202209061")
		addDir("pg_tblspc/16384/PG_15_202209061/5")
		for i := 0; i < 2; i++ {
			data := make([]byte, 8192*(i+1))
			rnd.Read(data)
			addFile(fmt.Sprintf("pg_tblspc/16384/PG_15_202209061/5/%d", 17000+i), data)
		}
	}
	for ; segno <= lastSeg; segno++ {
		addSeg(segno)
	}
	rng := func(tli uint32, a, b uint64) string {
		return fmt.Sprintf("{ \"Timeline\": %d, \"Start-LSN\": \"%X/%X\", \"End-LSN\": \"%X/%X\" }", tli, a>>32, uint32(a), b>>32, uint32(b))
	}
	ranges := []string{rng(1, start, end)}
	if o.Promote {
		ranges = []string{rng(2, switchPoint, end), rng(1, start, switchPoint)}
		s.Members = append(s.Members, Member{Name: "pg_wal/00000002.history", Type: tar.TypeReg, Mode: 0o600,
			Data: []byte(fmt.Sprintf("1\t%X/%X\tno recovery target specified\n", switchPoint>>32, uint32(switchPoint)))})
	}
	addFile("backup_manifest", BuildManifest(1, 0, files, ranges))
	return s
}

// bigContent writes size pseudo-random bytes quickly (a 1 MiB random block, varied per MiB).
func bigContent(w io.Writer, seed, size int64) error {
	block := make([]byte, 1<<20)
	rand.New(rand.NewSource(seed)).Read(block)
	for off := int64(0); off < size; off += int64(len(block)) {
		binary.LittleEndian.PutUint64(block, uint64(off)^uint64(seed))
		n := min(int64(len(block)), size-off)
		if _, err := w.Write(block[:n]); err != nil {
			return err
		}
	}
	return nil
}

func checksum(alg, name string, data []byte) ManifestFile {
	mf := ManifestFile{Path: name, Size: int64(len(data))}
	switch alg {
	case "", "CRC32C":
		mf.Algorithm, mf.Checksum = "CRC32C", crcHex(crc32.Checksum(data, castagnoli))
	case "SHA256":
		sum := sha256.Sum256(data)
		mf.Algorithm, mf.Checksum = "SHA256", hex.EncodeToString(sum[:])
	case "NONE":
	default:
		panic("verifytest: algorithm " + alg)
	}
	return mf
}

func crcHex(c uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], c)
	return hex.EncodeToString(b[:])
}

func segName(tli uint32, segno uint64, segSize int64) string {
	return pgformat.WALSegmentFileName(tli, segno, int(segSize))
}
