package sqlfetch

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/walweave/walweave/internal/hugemem"
	"github.com/walweave/walweave/internal/pgrepl"
)

// piece is a byte range of one file, read with one pg_read_binary_file call.
type piece struct {
	m   int   // index of the member in Source.members
	off int64 // offset in the file
	n   int64 // bytes asked for
}

// task is what one query fetches: one chunk of a large file, or several small files whole,
// at most ChunkSize bytes in all.
type task struct {
	pieces []piece
	done   chan struct{} // closed when data (or err) is set
	buf    []byte        // holds every piece's bytes
	data   [][]byte      // per piece: the bytes read (shorter when the file shrank)
	miss   []bool        // per piece: the file did not exist (pg_read_binary_file returned NULL)
	err    error
	// Set by the reader that fetched the task (fetcher.prepare), so that the writer's
	// goroutine only copies bytes: per piece, the CRC-32C of its data (when the manifest uses
	// CRC-32C; the server's, when it sent them) and the pages whose checksum failed (to be
	// read again by the writer).
	crc []uint32
	bad [][]int32
}

// fetcher runs the workers: each claims the next task in order, at most window tasks ahead of
// the one the writer is reading, and keeps up to depth queries in flight on its connection
// (pipeline mode), so that a link's latency does not idle it. A worker copies a result out of
// its socket only once the writer is within readAhead tasks of it: until then the result
// waits in the kernel's socket buffers, and the window's bytes are held there rather than in
// chunk buffers gone cold by the time the writer reaches them.
type fetcher struct {
	ctx    context.Context
	tasks  []*task
	window int
	depth  int
	chunk  int
	// readAhead: a reader copies a task's result out of its socket only once the task is among
	// the readAhead the writer reads next, the one it holds counted (0: as soon as it
	// arrives); the rest of the window waits in the sockets' kernel buffers. At least 2: the
	// writer holds a task while it waits for the next.
	readAhead int
	turnWait  time.Duration // the longest a reader waits for its turn (maxTurnWait at most)
	rowSize   int           // a chunk is read as rows of at most this many bytes (0: one row)
	// serverCRC: the queries ask the server for each value's CRC-32C too (crc32c(bytea),
	// PostgreSQL 18 and later), which the reader then need not compute.
	serverCRC bool

	mu       sync.Mutex
	cond     *sync.Cond
	next     int // next task to claim
	consumed int // tasks the writer is done with
	free     [][]byte
	// arena holds the chunk buffers, window of them, carved as they are first needed: one
	// allocation on huge pages (hugemem), which the kernel's copy from the sockets into
	// them takes less CPU on.
	arena  []byte
	carved int   // chunk buffers carved from arena
	wire   int64 // bytea bytes received

	// prepare, when set, runs on the reader's goroutine for each fetched task before the
	// writer sees it: the per-byte work that does not need the stream's order.
	prepare func(t *task)

	wg sync.WaitGroup
}

func newFetcher(ctx context.Context, tasks []*task, window, depth, chunk int) *fetcher {
	f := &fetcher{ctx: ctx, tasks: tasks, window: window, depth: depth, chunk: chunk, turnWait: maxTurnWait}
	f.cond = sync.NewCond(&f.mu)
	context.AfterFunc(ctx, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
	return f
}

// claim returns the next task to fetch; with block it waits for room in the window.
func (f *fetcher) claim(block bool) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if f.ctx.Err() != nil || f.next >= len(f.tasks) {
			return -1, false
		}
		if f.next < f.consumed+f.window {
			i := f.next
			f.next++
			return i, true
		}
		if !block {
			return -1, false
		}
		f.cond.Wait()
	}
}

// release tells the workers the writer is done with task i (tasks are released in order) and
// recycles its buffer.
func (f *fetcher) release(i int) {
	t := f.tasks[i]
	f.mu.Lock()
	if t.buf != nil {
		f.free = append(f.free, t.buf[:0])
	}
	t.buf, t.data = nil, nil
	if i+1 > f.consumed {
		f.consumed = i + 1
	}
	f.cond.Broadcast()
	f.mu.Unlock()
}

// buffer returns an empty chunk buffer: the one released last (the likeliest to be in the
// CPU's caches), else a new one.
func (f *fetcher) buffer() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.free); n > 0 {
		b := f.free[n-1]
		f.free = f.free[:n-1]
		return b
	}
	if f.arena == nil {
		f.arena = hugemem.Alloc(f.window * f.chunk)
	}
	if off := f.carved * f.chunk; off+f.chunk <= len(f.arena) {
		f.carved++
		return f.arena[off : off : off+f.chunk]
	}
	return make([]byte, 0, f.chunk) // only if more tasks are held than the window
}

// turn waits until task i is among the readAhead tasks the writer reads next (the one it
// holds counted), or for turnWait at most, and reports false if the fetch is cancelled first.
//
// The wait is bounded because a result left in the socket stops the server's backend once the
// socket's buffers are full: its kernel then probes a zero window, and ends the connection
// when that lasts longer than its tcp_user_timeout (which walweave sets, 40 s by default).
// While the writer moves, a turn comes within a few milliseconds; when the output stalls,
// each reader takes its results into the window's buffers, one per turnWait, as it would
// without a read-ahead, and then has no query in flight until the window has room.
func (f *fetcher) turn(i int) bool {
	if f.readAhead <= 0 {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < f.consumed+f.readAhead {
		return true
	}
	waited := false
	timer := time.AfterFunc(f.turnWait, func() {
		f.mu.Lock()
		waited = true
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer timer.Stop()
	for i >= f.consumed+f.readAhead && !waited {
		if f.ctx.Err() != nil {
			return false
		}
		f.cond.Wait()
	}
	return true
}

// maxTurnWait bounds how long a reader leaves a result in its socket for the writer to come
// near (fetcher.turn), and so how long the server's backend sees a zero window: well under
// any TCP user timeout a backup would set. A quarter of the connections' own, when smaller.
const maxTurnWait = 200 * time.Millisecond

// wait returns task i once it is fetched.
func (f *fetcher) wait(ctx context.Context, i int) (*task, error) {
	t := f.tasks[i]
	select {
	case <-t.done:
		return t, t.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-f.ctx.Done():
		select {
		case <-t.done:
			return t, t.err
		default:
		}
		return nil, context.Cause(f.ctx)
	}
}

const (
	oidText      = 25
	oidInt8      = 20
	oidTextArray = 1009
	oidInt8Array = 1016
)

const (
	readOne = "SELECT pg_catalog.pg_read_binary_file($1, $2, $3, true)"
	// readRows reads $3 bytes of file $1 from offset $2 as rows of at most $4 bytes, in order.
	// (pg_read_binary_file is volatile: the planner evaluates it after the sort, which orders
	// only the offsets.)
	readRows = "SELECT pg_catalog.pg_read_binary_file($1, o, least($4::int8, $2::int8 + $3::int8 - o), true) FROM pg_catalog.generate_series($2::int8, $2::int8 + $3::int8 - 1, $4::int8) AS o ORDER BY o"
	readMany = "SELECT pg_catalog.pg_read_binary_file(f.p, f.o, f.l, true) FROM unnest($1::text[], $2::int8[], $3::int8[]) WITH ORDINALITY AS f(p, o, l, n) ORDER BY f.n"
)

// The same queries returning each value's CRC-32C after it, for the manifest (crc32c(bytea),
// PostgreSQL 18 and later). The read is a subquery behind an optimisation fence (OFFSET 0):
// the file is read once and its value passed to crc32c, not read again for it.
const (
	readOneCRC  = "SELECT v, pg_catalog.crc32c(v) FROM (SELECT pg_catalog.pg_read_binary_file($1, $2, $3, true) AS v OFFSET 0) AS r"
	readRowsCRC = "SELECT v, pg_catalog.crc32c(v) FROM (SELECT pg_catalog.pg_read_binary_file($1, o, least($4::int8, $2::int8 + $3::int8 - o), true) AS v FROM pg_catalog.generate_series($2::int8, $2::int8 + $3::int8 - 1, $4::int8) AS o ORDER BY o OFFSET 0) AS r"
	readManyCRC = "SELECT v, pg_catalog.crc32c(v) FROM (SELECT pg_catalog.pg_read_binary_file(f.p, f.o, f.l, true) AS v FROM unnest($1::text[], $2::int8[], $3::int8[]) WITH ORDINALITY AS f(p, o, l, n) ORDER BY f.n OFFSET 0) AS r"
)

// work fetches tasks on conn until none is left or the fetch is cancelled. paths maps a
// member index to the path the server reads. It reads a result when its task's turn comes
// (turn), so that the chunk buffer it lands in is one the writer released a moment before.
//
// batch, when not nil, is the socket under conn: before each result is read its low-water
// mark is set to what the queries in flight will bring (readerLowWater at most), so that the
// reader sleeps until all of it has arrived, or the batch wait ends, rather than waking for
// each chunk: a wake-up costs the reader a system call, the ACK it sends (and the server's
// wake-up), and the scheduler's switches.
func (f *fetcher) work(conn *wireConn, batch *pgrepl.BatchedConn, paths func(m int) string, fail func(error)) {
	defer f.wg.Done()
	var inflight []int
	err := func() error {
		for {
			for len(inflight) < f.depth {
				i, ok := f.claim(len(inflight) == 0)
				if !ok {
					break
				}
				f.send(conn, f.tasks[i], paths)
				inflight = append(inflight, i)
			}
			if len(inflight) == 0 {
				return nil
			}
			if err := conn.flush(); err != nil {
				return err
			}
			if !f.turn(inflight[0]) {
				return context.Cause(f.ctx)
			}
			if batch != nil {
				batch.SetLowWater(f.coming(inflight) - conn.rd.Buffered())
			}
			if err := f.receive(conn, f.tasks[inflight[0]]); err != nil {
				return err
			}
			inflight = inflight[1:]
		}
	}()
	if err != nil {
		if f.ctx.Err() != nil {
			err = context.Cause(f.ctx)
		}
		for _, i := range inflight {
			t := f.tasks[i]
			t.err = err
			close(t.done)
		}
		fail(err)
	}
}

// readerLowWater bounds a reader's low-water mark: the results of Depth queries of
// DefaultChunkSize (the kernel caps it lower when its receive buffers are smaller:
// net.ipv4.tcp_rmem). Measured against 1 MiB: bench/README.md.
const readerLowWater = DefaultDepth * DefaultChunkSize

// coming is how many bytes of file data the tasks in flight will bring, at most
// readerLowWater: the framing around them comes on top, so the socket holds at least this
// much once they have all arrived (unless a file shrank).
func (f *fetcher) coming(inflight []int) int {
	var n int64
	for _, i := range inflight {
		for _, p := range f.tasks[i].pieces {
			n += p.n
		}
	}
	return int(min(n, readerLowWater))
}

func (f *fetcher) send(conn *wireConn, t *task, paths func(m int) string) {
	one, rows, many := readOne, readRows, readMany
	if f.serverCRC {
		one, rows, many = readOneCRC, readRowsCRC, readManyCRC
	}
	if len(t.pieces) == 1 && f.rowSize > 0 && t.pieces[0].n > int64(f.rowSize) {
		p := t.pieces[0]
		conn.queue(rows, []uint32{oidText, oidInt8, oidInt8, oidInt8},
			[][]byte{[]byte(paths(p.m)), strconv.AppendInt(nil, p.off, 10), strconv.AppendInt(nil, p.n, 10), strconv.AppendInt(nil, int64(f.rowSize), 10)})
	} else if len(t.pieces) == 1 {
		p := t.pieces[0]
		conn.queue(one, []uint32{oidText, oidInt8, oidInt8},
			[][]byte{[]byte(paths(p.m)), strconv.AppendInt(nil, p.off, 10), strconv.AppendInt(nil, p.n, 10)})
	} else {
		var ps, os, ls []byte
		ps, os, ls = append(ps, '{'), append(os, '{'), append(ls, '{')
		for k, p := range t.pieces {
			if k > 0 {
				ps, os, ls = append(ps, ','), append(os, ','), append(ls, ',')
			}
			ps = appendArrayString(ps, paths(p.m))
			os = strconv.AppendInt(os, p.off, 10)
			ls = strconv.AppendInt(ls, p.n, 10)
		}
		ps, os, ls = append(ps, '}'), append(os, '}'), append(ls, '}')
		conn.queue(many, []uint32{oidTextArray, oidInt8Array, oidInt8Array}, [][]byte{ps, os, ls})
	}
}

// appendArrayString appends s as a double-quoted element of an array literal.
func appendArrayString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// receive reads task t's result, up to its sync point. A task of one piece comes in one row
// or several (readRows): their bytes in order, a NULL first row a file that no longer exists,
// a short row the end of a file that shrank. A task of several files has a row per file.
func (f *fetcher) receive(conn *wireConn, t *task) error {
	buf := f.buffer()
	data := make([][]byte, 0, len(t.pieces))
	miss := make([]bool, 0, len(t.pieces))
	var wire int64
	rows := 0
	one := len(t.pieces) == 1
	// A chunk read as rows: its rows come in order, each rowSize bytes but the last, into
	// the buffer one after the other. Once a row's destination is handed out, the rows after
	// it are predicted with theirs and read in the same system calls (one readv for the
	// chunk, where each row would take one).
	var ahead func()
	if one && f.rowSize > 0 && t.pieces[0].n > int64(f.rowSize) {
		ahead = func() {
			end, left := len(buf), t.pieces[0].n-int64(len(buf))
			for left > 0 {
				r := int(min(int64(f.rowSize), left))
				if end+r > cap(buf) || !conn.predictRow(buf[end:end+r:end+r]) {
					return
				}
				end, left = end+r, left-int64(r)
			}
		}
	}
	// With serverCRC each row carries its value's CRC-32C, computed by the server: a
	// piece's is its rows' combined (or the file's own, for a task of several files).
	var crcs []uint32
	crcOK := f.serverCRC
	var last int // the bytes of the last row's value
	var crc func(v uint32, ok bool)
	if crcOK {
		crcs = make([]uint32, 0, len(t.pieces))
		crc = func(v uint32, ok bool) {
			switch {
			case !ok:
				crcOK = false
			case one && len(crcs) == 1:
				crcs[0] = crc32cCombine(crcs[0], v, int64(last))
			default:
				crcs = append(crcs, v)
			}
		}
	}
	err := conn.result(&rowSink{ahead: ahead, crc: crc, into: func(n int) ([]byte, error) {
		rows++
		// The destination is the rest of the chunk buffer (cap f.chunk, the most a task
		// asks for): what the server sends beyond a piece's size is dropped, never grown into.
		if one {
			if rows == 1 {
				miss = append(miss, n < 0)
			}
			k := int(min(int64(max(n, 0)), t.pieces[0].n-int64(len(buf))))
			start := len(buf)
			buf = grow(buf, k)
			wire += int64(k)
			last = k
			return buf[start:], nil
		}
		i := len(data)
		if i >= len(t.pieces) {
			return nil, fmt.Errorf("more rows than the %d files asked for", len(t.pieces))
		}
		k := int(min(int64(max(n, 0)), t.pieces[i].n))
		start := len(buf)
		buf = grow(buf, k)
		data = append(data, buf[start:len(buf):len(buf)])
		miss = append(miss, n < 0)
		wire += int64(k)
		return buf[start:], nil
	}})
	if err != nil {
		f.recycle(buf)
		return fmt.Errorf("read %s: %w", t.describe(), err)
	}
	if one {
		data = append(data, buf[:len(buf):len(buf)])
	}
	if rows == 0 || len(data) != len(t.pieces) {
		f.recycle(buf)
		return fmt.Errorf("read %s: %d rows for %d pieces", t.describe(), rows, len(t.pieces))
	}
	f.mu.Lock()
	f.wire += wire
	f.mu.Unlock()
	t.buf, t.data, t.miss = buf, data, miss
	if crcOK && len(crcs) == len(t.pieces) {
		t.crc = crcs
	}
	f.complete(t)
	return nil
}

// grow extends b by k bytes (their contents are to be overwritten), within its capacity when
// it has room.
func grow(b []byte, k int) []byte {
	if k > cap(b)-len(b) {
		b = slices.Grow(b, k)
	}
	return b[:len(b)+k]
}

// recycle returns a buffer that no task holds.
func (f *fetcher) recycle(buf []byte) {
	f.mu.Lock()
	f.free = append(f.free, buf[:0])
	f.mu.Unlock()
}

// complete hands a fetched task to the writer, once the reader has done its share of the
// per-byte work (page checksums, manifest CRC) on it.
func (f *fetcher) complete(t *task) {
	if f.prepare != nil {
		f.prepare(t)
	}
	close(t.done)
}

func (t *task) describe() string {
	if len(t.pieces) == 1 {
		return "a chunk"
	}
	return strconv.Itoa(len(t.pieces)) + " files"
}

// planTasks splits the files into tasks: a file of chunk bytes or more into chunk-sized
// pieces (one task each, fetched by all connections at once), smaller files whole, several
// to a task up to chunk bytes and maxBatch files.
func planTasks(sizes []int64, files []int, chunk int64, maxBatch int) []*task {
	var tasks []*task
	var cur *task
	var curBytes int64
	flush := func() {
		if cur != nil {
			tasks = append(tasks, cur)
			cur, curBytes = nil, 0
		}
	}
	for _, m := range files {
		size := sizes[m]
		if size >= chunk {
			flush()
			for off := int64(0); off < size; off += chunk {
				n := min(chunk, size-off)
				tasks = append(tasks, &task{pieces: []piece{{m: m, off: off, n: n}}})
			}
			continue
		}
		if cur != nil && (curBytes+size > chunk || len(cur.pieces) >= maxBatch) {
			flush()
		}
		if cur == nil {
			cur = &task{}
		}
		cur.pieces = append(cur.pieces, piece{m: m, off: 0, n: size})
		curBytes += size
	}
	flush()
	for _, t := range tasks {
		t.done = make(chan struct{})
	}
	return tasks
}
