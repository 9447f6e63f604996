package sqlfetch

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/walweave/walweave/internal/readerr"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/tarw"
)

func BenchmarkPageChecksum(b *testing.B) {
	page := make([]byte, 8192)
	for i := range page {
		page[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(page)))
	for i := 0; i < b.N; i++ {
		pageChecksum(page, uint32(i))
	}
}

// memFiles is a data directory in memory: relation files whose pages carry valid checksums
// (and an LSN before the backup's start, so every page is verified), and small files.
type memFiles struct {
	rels  []string
	data  [][]byte
	total int64
	// listed, when set, is the size a file was listed with, larger than its data: it shrank
	// before it was read, and is served zero-padded to the listed size.
	listed map[int]int64
}

// size is the size file i was listed with.
func (mf *memFiles) size(i int) int64 {
	if n, ok := mf.listed[i]; ok {
		return n
	}
	return int64(len(mf.data[i]))
}

func makeMemFiles(tb testing.TB, bigFiles, bigSize, smallFiles, smallSize int) *memFiles {
	tb.Helper()
	const bs = 8192
	rng := rand.New(rand.NewPCG(1, 2))
	mf := &memFiles{}
	add := func(rel string, size int) {
		b := make([]byte, size)
		for k := 0; k+bs <= size; k += bs {
			page := b[k : k+bs]
			for i := 0; i < bs; i += 8 {
				binary.LittleEndian.PutUint64(page[i:], rng.Uint64())
			}
			binary.LittleEndian.PutUint32(page[0:], 0)    // pd_lsn: before the start
			binary.LittleEndian.PutUint32(page[4:], 1000) //
			binary.LittleEndian.PutUint16(page[14:], 512) // pd_upper: not new
			binary.LittleEndian.PutUint16(page[8:], pageChecksum(page, uint32(k/bs)))
		}
		mf.rels = append(mf.rels, rel)
		mf.data = append(mf.data, b)
		mf.total += int64(size)
	}
	for i := 0; i < bigFiles; i++ {
		add(fmt.Sprintf("base/5/%d", 20000+i), bigSize)
	}
	for i := 0; i < smallFiles; i++ {
		add(fmt.Sprintf("base/5/%d", 30000+i), smallSize)
	}
	return mf
}

// memSource is a Source whose readers copy the files' bytes from memory, as they copy a
// DataRow's bytes out of pgconn's buffer, instead of fetching them from a server.
func memSource(tb testing.TB, mf *memFiles, jobs int) *Source {
	tb.Helper()
	return memSourceConfig(tb, mf, Config{Jobs: jobs})
}

// memSourceConfig is memSource with cfg's settings (cfg.Jobs readers).
func memSourceConfig(tb testing.TB, mf *memFiles, cfg Config) *Source {
	tb.Helper()
	jobs := cfg.Jobs
	s := New(cfg)
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.control.BlockSize = 8192
	s.control.RelsegSize = 131072
	s.verify = true
	s.startLSN = 1 << 40
	s.alg = pgformat.ChecksumCRC32C
	var err error
	if s.mb, err = pgformat.NewManifestBuilder(&s.manifest, pgformat.ManifestOptions{Version: 1, Algorithm: s.alg}); err != nil {
		tb.Fatal(err)
	}
	var files []int
	sizes := make([]int64, len(mf.rels))
	for i, rel := range mf.rels {
		s.members = append(s.members, &member{entry: entry{rel: rel, size: mf.size(i), mtime: 1}, path: rel})
		files = append(files, i)
		sizes[i] = mf.size(i)
	}
	tasks := planTasks(sizes, files, int64(s.cfg.ChunkSize), maxBatchFiles)
	for _, t := range tasks {
		for _, p := range t.pieces {
			s.members[p.m].npieces++
		}
	}
	s.newFetch(tasks)
	for range jobs {
		s.fetch.wg.Add(1)
		go s.fetch.workMem(mf.data)
	}
	return s
}

// workMem is work with the files in memory.
func (f *fetcher) workMem(files [][]byte) {
	defer f.wg.Done()
	for {
		i, ok := f.claim(true)
		if !ok {
			return
		}
		if !f.turn(i) {
			return
		}
		t := f.tasks[i]
		buf := f.buffer()
		data := make([][]byte, 0, len(t.pieces))
		miss := make([]bool, 0, len(t.pieces))
		for _, p := range t.pieces {
			start := len(buf)
			f := files[p.m]
			buf = append(buf, f[min(p.off, int64(len(f))):min(p.off+p.n, int64(len(f)))]...)
			data = append(data, buf[start:len(buf):len(buf)])
			miss = append(miss, false)
		}
		t.buf, t.data, t.miss = buf, data, miss
		f.complete(t)
	}
}

// copyAll writes every member as mux's weaver does (tarw.Writer, io.Copy through a
// readerr.Reader), stopping before pg_control (which needs the server).
func copyAll(tb testing.TB, s *Source, w io.Writer) {
	ctx := context.Background()
	tw := tarw.NewWriter(w)
	for s.mi < len(s.members) {
		m, err := s.Next(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tw.WriteHeader(m.Header); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(tw, &readerr.Reader{R: m.Data}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.finishMember(ctx); err != nil {
		tb.Fatal(err)
	}
	s.releaseHeld()
	s.fetch.wg.Wait()
	if s.checksum.Failures > 0 {
		tb.Fatalf("%d checksum failures", s.checksum.Failures)
	}
	if err := tw.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkClient is the --jobs client without a server: 4 readers copy chunks from memory
// (as from pgconn's buffer), pages are verified, the manifest's CRC-32C computed and the tar
// stream written to io.Discard. Run with -cpu 1,2 to see how the per-byte work spreads over
// cores.
//
// The machine this runs on is often shared, so besides the wall-clock GB/s it reports CPU
// time per byte, which load disturbs less: cpu-ns/B for the whole process (readers, writer,
// GC) and writer-ns/B for the writer's goroutine alone (locked to its thread, measured with
// RUSAGE_THREAD). The writer's share is the part that cannot spread: 1/writer-ns/B is the
// most this client can do with cores to spare.
func BenchmarkClient(b *testing.B) {
	mf := makeMemFiles(b, 6, 8<<20, 512, 24<<10) // 48 MiB in relation files, 12 MiB in small ones
	b.SetBytes(mf.total)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	proc0, thr0 := processCPU(), threadCPU()
	for i := 0; i < b.N; i++ {
		s := memSource(b, mf, 4)
		copyAll(b, s, io.Discard)
	}
	proc, thr := processCPU()-proc0, threadCPU()-thr0
	n := float64(mf.total) * float64(b.N)
	b.ReportMetric(float64(proc.Nanoseconds())/n, "cpu-ns/B")
	b.ReportMetric(float64(thr.Nanoseconds())/n, "writer-ns/B")
}

// TestMemSource checks the benchmark's path: every byte arrives in order, files that shrank
// are zero-padded to their listed size, the manifest has every file's CRC-32C (combined from
// the readers' per-piece CRCs and the padding's).
func TestMemSource(t *testing.T) {
	mf := makeMemFiles(t, 3, 3<<20+8192*5, 300, 24<<10)
	// Two files shrank after the listing: one inside its last chunk, one by more than a chunk.
	mf.listed = map[int]int64{0: int64(len(mf.data[0])) + 5000, 1: int64(len(mf.data[1])) + 2<<20 + 3}
	want := func(i int) []byte {
		return append(append([]byte(nil), mf.data[i]...), make([]byte, mf.size(i)-int64(len(mf.data[i])))...)
	}
	s := memSource(t, mf, 3)
	var out collect
	copyAll(t, s, &out)
	r := tarw.NewReader(&out)
	for i := range mf.rels {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != mf.rels[i] || string(got) != string(want(i)) {
			t.Fatalf("member %d: %q, %d bytes; want %q, %d bytes", i, m.Name, len(got), mf.rels[i], mf.size(i))
		}
	}
	if _, err := s.mb.Finish([]pgformat.WALRange{{Timeline: 1, Start: 0x1000000, End: 0x2000000}}); err != nil {
		t.Fatal(err)
	}
	man, err := pgformat.ParseManifest(s.manifest.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Files) != len(mf.rels) {
		t.Fatalf("manifest has %d files, want %d", len(man.Files), len(mf.rels))
	}
	for i, f := range man.Files {
		sum := pgformat.CRC32CHex(crc32.Checksum(want(i), pgformat.Castagnoli))
		if f.Path != mf.rels[i] || f.Checksum != sum || f.Size != mf.size(i) {
			t.Fatalf("manifest file %d: %s %d %s, want %s %d %s", i, f.Path, f.Size, f.Checksum, mf.rels[i], mf.size(i), sum)
		}
	}
}

// collect is a bytes.Buffer as an io.Writer only (no ReaderFrom to take a shortcut through).
type collect struct{ b bytes.Buffer }

func (c *collect) Write(p []byte) (int, error) { return c.b.Write(p) }
func (c *collect) Read(p []byte) (int, error)  { return c.b.Read(p) }

// TestChecksumRows: pageChecksum (one vectorised call for the whole page, where the CPU has
// AVX2) agrees with pageChecksumGeneric, the server's loop written out, on random pages, for
// every block number tried and every block size.
func TestChecksumRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	page := make([]byte, 8192)
	for n := 0; n < 300; n++ {
		for i := 0; i < len(page); i += 8 {
			binary.LittleEndian.PutUint64(page[i:], rng.Uint64())
		}
		blk := rng.Uint32()
		if got, want := pageChecksum(page, blk), pageChecksumGeneric(page, blk); got != want {
			t.Fatalf("page %d, block %d: %04x, generic %04x", n, blk, got, want)
		}
		// The block sizes a server can be built with, and a single row.
		for _, size := range []int{128, 1024, 2048, 4096, 16384, 32768} {
			p := make([]byte, size)
			for i := range p {
				p[i] = page[(i*7+n)%len(page)]
			}
			if got, want := pageChecksum(p, blk), pageChecksumGeneric(p, blk); got != want {
				t.Fatalf("page %d of %d bytes, block %d: %04x, generic %04x", n, size, blk, got, want)
			}
		}
	}
}

// pageChecksumGeneric is pageChecksum without the vectorised loop.
func pageChecksumGeneric(page []byte, blkno uint32) uint16 {
	sums := checksumBaseOffsets
	rows := len(page) / (4 * nSums)
	for i := 0; i < rows; i++ {
		row := page[i*4*nSums : (i+1)*4*nSums]
		for j := 0; j < nSums; j++ {
			v := binary.LittleEndian.Uint32(row[4*j:])
			if i == 0 && j == 2 {
				v &^= 0xffff
			}
			t := sums[j] ^ v
			sums[j] = t*fnvPrime ^ (t >> 17)
		}
	}
	return finishChecksum(&sums, blkno)
}

func BenchmarkPageChecksumGeneric(b *testing.B) {
	page := make([]byte, 8192)
	for i := range page {
		page[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(page)))
	for i := 0; i < b.N; i++ {
		pageChecksumGeneric(page, uint32(i))
	}
}
