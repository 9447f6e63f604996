package pgformat_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/walweave/walweave/pgformat"
)

func ExampleParseLSN() {
	l, err := pgformat.ParseLSN("16/B374D848")
	if err != nil {
		panic(err)
	}
	fmt.Println(l, l.SegmentStart(16<<20))
	fmt.Println(pgformat.WALFileName(1, l, 16<<20))
	// Output:
	// 16/B374D848 16/B3000000
	// 0000000100000016000000B3
}

func ExampleParseWALFileName() {
	tli, log, seg, ok := pgformat.ParseWALFileName("0000000200000016000000B3")
	segno, _ := pgformat.WALSegmentNo(log, seg, 16<<20)
	fmt.Println(tli, segno, ok, pgformat.HistoryFileName(tli))
	// Output: 2 5811 true 00000002.history
}

func ExampleParseHistory() {
	h, err := pgformat.ParseHistory([]byte("1\t0/3000158\tno recovery target specified\n"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("timeline %d ended at %s: %s\n", h[0].Timeline, h[0].SwitchLSN, h[0].Reason)
	// Output: timeline 1 ended at 0/3000158: no recovery target specified
}

func ExampleParseBackupLabel() {
	l, err := pgformat.ParseBackupLabel([]byte("START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\n" +
		"CHECKPOINT LOCATION: 0/4000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n" +
		"START TIME: 2024-05-06 07:08:09 UTC\nLABEL: nightly\nSTART TIMELINE: 1\n" +
		"INCREMENTAL FROM LSN: 0/2000028\nINCREMENTAL FROM TLI: 1\n"))
	if err != nil {
		panic(err)
	}
	fmt.Println(l.StartLSN, l.Incremental(), l.IncrementalFromLSN)
	// What a restore of the chain writes:
	os.Stdout.Write(l.WithoutIncremental().Bytes())
	// Output:
	// 0/4000028 true 0/2000028
	// START WAL LOCATION: 0/4000028 (file 000000010000000000000004)
	// CHECKPOINT LOCATION: 0/4000060
	// BACKUP METHOD: streamed
	// BACKUP FROM: primary
	// START TIME: 2024-05-06 07:08:09 UTC
	// LABEL: nightly
	// START TIMELINE: 1
}

func ExampleManifestBuilder() {
	var out bytes.Buffer
	b, err := pgformat.NewManifestBuilder(&out, pgformat.ManifestOptions{Version: 2, SystemIdentifier: 7345, Algorithm: pgformat.ChecksumCRC32C})
	if err != nil {
		panic(err)
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	// Stream a file's content through the builder (e.g. with io.MultiWriter while writing it).
	fw := b.File("backup_label", mtime)
	fmt.Fprint(fw, "START WAL LOCATION: ...\n")
	if err := fw.Close(); err != nil {
		panic(err)
	}
	if _, err := b.Finish([]pgformat.WALRange{{Timeline: 1, Start: 0x2000028, End: 0x2000100}}); err != nil {
		panic(err)
	}
	m, err := pgformat.ParseManifest(out.Bytes())
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.SplitN(out.String(), "\n", 4)[3][:70])
	fmt.Println(m.Version, m.SystemIdentifier, m.Files[0].Path, m.Files[0].Size, m.Files[0].Algorithm, m.StartLSN(), m.EndLSN())
	// Output:
	// { "Path": "backup_label", "Size": 24, "Last-Modified": "2024-05-06 07:
	// 2 7345 backup_label 24 CRC32C 0/2000028 0/2000100
}

func ExampleAppendTablespaceLines() {
	conf := pgformat.AppendTablespaceLines([]byte("work_mem = '64MB'\n"), []pgformat.TablespaceLocation{{OID: "16384", Location: "/srv/ts1"}})
	fmt.Print(string(conf))
	ts, rest := pgformat.ParseTablespaceLines(conf)
	fmt.Printf("%v %q\n", ts, rest)
	// Output:
	// work_mem = '64MB'
	// # walweave: tablespace 16384 was at /srv/ts1
	// allow_in_place_tablespaces = on
	// [{16384 /srv/ts1}] "work_mem = '64MB'\n"
}

func ExampleReadIncrementalHeader() {
	h := pgformat.IncrementalHeader{TruncationBlockLength: 12, BlockNumbers: []uint32{3, 7}}
	file := h.AppendTo(nil, 8192) // then 2 blocks of 8192 bytes would follow
	got, err := pgformat.ReadIncrementalHeader(bytes.NewReader(file), 8192)
	if err != nil {
		panic(err)
	}
	name, _ := pgformat.IsIncrementalName("base/5/INCREMENTAL.16384")
	fmt.Println(got.BlockCount, got.TruncationBlockLength, got.BlockNumbers, len(file), pgformat.IncrementalFileSize(got, 8192), name)
	// Output: 2 12 [3 7] 8192 24576 base/5/16384
}

func ExampleParseControlFile() {
	b, err := os.ReadFile("testdata/pg_control/17")
	if err != nil {
		panic(err)
	}
	c, err := pgformat.ParseControlFile(b)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.PgControlVersion, c.BlockSize, c.RelsegSize, c.WALSegSize, c.State)
	// Output: 1700 8192 131072 16777216 shut down
}
