package sqlfetch

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// TestWireConn runs the readers' protocol against a real server: pipelined queries in the
// three shapes the fetch sends (one row, a chunk in rows, several files), the rows in order
// and byte for byte as the file on disk, NULL for a missing file, and a server error as a
// *pgconn.PgError with its SQLSTATE.
func TestWireConn(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, "create table t as select g, md5(g::text) from generate_series(1, 30000) g; checkpoint")
	rel := c.QueryValue(t, "select pg_relation_filepath('t')")
	want, err := os.ReadFile(filepath.Join(c.DataDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 3*8192*16 {
		t.Fatalf("relation of %d bytes, want several row sizes", len(want))
	}
	pc, err := pgconn.Connect(context.Background(), c.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := takeOver(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()

	const row = 8192 * 4
	n := int64(len(want))
	itoa := func(v int64) []byte { return strconv.AppendInt(nil, v, 10) }
	w.queue(readOne, []uint32{oidText, oidInt8, oidInt8}, [][]byte{[]byte(rel), itoa(8192), itoa(8192)})
	w.queue(readRows, []uint32{oidText, oidInt8, oidInt8, oidInt8}, [][]byte{[]byte(rel), itoa(0), itoa(n + 5000), itoa(row)})
	w.queue(readMany, []uint32{oidTextArray, oidInt8Array, oidInt8Array},
		[][]byte{[]byte(`{"` + rel + `","base/no/such/file","PG_VERSION"}`), []byte("{0,0,0}"), []byte("{100,100,100}")})
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	collect := values(&got)
	if err := w.result(&rowSink{into: collect}); err != nil || len(got) != 1 || string(got[0]) != string(want[8192:16384]) {
		t.Fatalf("one row: %v, %d rows", err, len(got))
	}
	got = nil
	if err := w.result(&rowSink{into: collect}); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for i, v := range got {
		if len(v) > row || (len(v) < row && i < len(got)-1 && len(got[i+1]) > 0) {
			t.Fatalf("row %d of %d bytes", i, len(v))
		}
		all = append(all, v...)
	}
	if string(all) != string(want) { // past the end: short and empty rows
		t.Fatalf("rows: %d bytes in %d rows, want the file's %d", len(all), len(got), len(want))
	}
	got = nil
	if err := w.result(&rowSink{into: collect}); err != nil || len(got) != 3 || string(got[0]) != string(want[:100]) || got[1] != nil || len(got[2]) == 0 {
		t.Fatalf("several files: %v, %q", err, got)
	}

	// From PostgreSQL 18 the same queries can bring each value's CRC-32C, which must be
	// hash/crc32's; before it the server has no crc32c and the reader computes them.
	if c.QueryValue(t, "select to_regprocedure('pg_catalog.crc32c(bytea)') is not null") != "true" {
		if v := c.QueryValue(t, "select current_setting('server_version_num')"); v >= "180000" {
			t.Fatalf("PostgreSQL %s has no crc32c(bytea)", v)
		}
		return
	}
	w.queue(readOneCRC, []uint32{oidText, oidInt8, oidInt8}, [][]byte{[]byte(rel), itoa(8192), itoa(8192)})
	w.queue(readRowsCRC, []uint32{oidText, oidInt8, oidInt8, oidInt8}, [][]byte{[]byte(rel), itoa(0), itoa(n + 5000), itoa(row)})
	w.queue(readManyCRC, []uint32{oidTextArray, oidInt8Array, oidInt8Array},
		[][]byte{[]byte(`{"` + rel + `","base/no/such/file","PG_VERSION"}`), []byte("{0,0,0}"), []byte("{100,100,100}")})
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	for q := range 3 {
		var crcs []uint32
		got = nil
		if err := w.result(&rowSink{into: collect, crc: func(v uint32, ok bool) {
			if !ok {
				t.Fatalf("query %d, row %d: no CRC", q, len(crcs))
			}
			crcs = append(crcs, v)
		}}); err != nil {
			t.Fatalf("query %d: %v", q, err)
		}
		if len(crcs) != len(got) || len(got) == 0 {
			t.Fatalf("query %d: %d CRCs for %d rows", q, len(crcs), len(got))
		}
		for i, v := range got {
			if crcs[i] != crc32.Checksum(v, pgformat.Castagnoli) {
				t.Fatalf("query %d, row %d: the server's CRC-32C %08x, hash/crc32's %08x", q, i, crcs[i], crc32.Checksum(v, pgformat.Castagnoli))
			}
		}
	}

	// An absolute path outside the data directory is refused to a role without
	// pg_read_server_files: 42501.
	c.Exec(t, "create role nofiles login password 'x'; grant execute on function pg_read_binary_file(text, bigint, bigint, boolean) to nofiles")
	cfg, err := pgconn.ParseConfig(c.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = "nofiles", "x"
	pc2, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := takeOver(context.Background(), pc2)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.close()
	w2.queue(readOne, []uint32{oidText, oidInt8, oidInt8}, [][]byte{[]byte("/etc/hostname"), itoa(0), itoa(10)})
	if err := w2.flush(); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := w2.result(&rowSink{into: collect}); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("reading outside the data directory: %v, want SQLSTATE 42501", err)
	}
}

// values returns a wireConn.result destination that appends each row's value to *got (nil
// for NULL), in a slice of its own: filled by the time result returns.
func values(got *[][]byte) func(n int) ([]byte, error) {
	return func(n int) ([]byte, error) {
		if n < 0 {
			*got = append(*got, nil)
			return nil, nil
		}
		v := make([]byte, n)
		*got = append(*got, v)
		return v, nil
	}
}

// FuzzWireResult: whatever the server sends, reading a result returns rows or an error; it
// never panics, hands out a destination larger than asked for, or fills more bytes than the
// input holds. The destination is bounded (as a task's chunk buffer is): a value longer than
// it is read in part and the rest dropped; the input's tail after each result is read through
// the bounded read-ahead.
func FuzzWireResult(f *testing.F) {
	msg := func(typ byte, body ...byte) []byte {
		return append([]byte{typ, 0, 0, byte((len(body) + 4) >> 8), byte(len(body) + 4)}, body...)
	}
	ok := append(append(append(append(msg('1'), msg('2')...), msg('D', 0, 1, 0, 0, 0, 3, 'a', 'b', 'c')...),
		msg('D', 0, 1, 0xff, 0xff, 0xff, 0xff)...), append(msg('C', 'S', 'E', 'L', 0), msg('Z', 'I')...)...)
	f.Add(ok)
	f.Add(append(msg('1'), msg('E', 'S', 'E', 'R', 'R', 'O', 'R', 0, 'C', '4', '2', '5', '0', '1', 0, 0)...))
	f.Add(append(append(msg('1'), msg('2')...), msg('D', 0, 1, 0, 0, 0, 9, 'x')...))
	f.Add(append(msg('1'), msg('N', 0)...))
	f.Add(append(append(msg('1'), msg('N', 0)...), msg('2')...))
	// A value longer than the destination (12 bytes, 8 taken), then a row after it.
	f.Add(append(append(append(append(msg('1'), msg('2')...), msg('D', append([]byte{0, 1, 0, 0, 0, 12}, "abcdefghijkl"...)...)...),
		msg('D', 0, 1, 0, 0, 0, 2, 'x', 'y')...), append(msg('C', 'S', 0), msg('Z', 'I')...)...))
	// Two columns; a NULL with bytes after it; a row too short for its header.
	f.Add(append(append(msg('1'), msg('2')...), msg('D', 0, 2, 0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b')...))
	f.Add(append(append(msg('1'), msg('2')...), msg('D', 0, 1, 0xff, 0xff, 0xff, 0xff, 'z')...))
	f.Add(append(append(msg('1'), msg('2')...), msg('D', 0, 1, 0)...))
	// A notice between the rows, and a second result pipelined behind the first.
	f.Add(append(append(append(append(ok, msg('N', 'S', 'x', 0, 0)...), msg('1')...), msg('2')...),
		append(msg('D', 0, 1, 0, 0, 0, 1, 'q'), append(msg('C', 0), msg('Z', 'I')...)...)...))
	// Rows of 3 bytes as a chunk's (predicted), then a short one, then a result of one row.
	rows := append(append(msg('1'), msg('2')...), msg('D', 0, 1, 0, 0, 0, 3, 'a', 'b', 'c')...)
	rows = append(rows, msg('D', 0, 1, 0, 0, 0, 3, 'd', 'e', 'f')...)
	rows = append(rows, msg('D', 0, 1, 0, 0, 0, 1, 'g')...)
	rows = append(append(rows, msg('C', 'S', 0)...), msg('Z', 'I')...)
	f.Add(append(append(rows, ok...), msg('D', 0, 1, 0, 0, 0, 3, 'x')...))
	// The same with a CRC column: rows of 3 bytes, a short one, a NULL, an out-of-range CRC.
	crcCol := []byte{0, 0, 0, 8, 0, 0, 0, 0, 0xe3, 0x06, 0x9d, 0x1f}
	rows = append(append(msg('1'), msg('2')...), msg('D', append([]byte{0, 2, 0, 0, 0, 3, 'a', 'b', 'c'}, crcCol...)...)...)
	rows = append(rows, msg('D', append([]byte{0, 2, 0, 0, 0, 3, 'd', 'e', 'f'}, crcCol...)...)...)
	rows = append(rows, msg('D', append([]byte{0, 2, 0, 0, 0, 1, 'g'}, crcCol...)...)...)
	rows = append(rows, msg('D', 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)...)
	rows = append(rows, msg('D', 0, 2, 0, 0, 0, 1, 'h', 0, 0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0)...)
	f.Add(append(append(rows, msg('C', 'S', 0)...), msg('Z', 'I')...))
	f.Fuzz(func(t *testing.T, in []byte) {
		plain, errPlain := fuzzResults(t, in, false)
		predicted, errPredicted := fuzzResults(t, in, true)
		if errPlain == nil && errPredicted == nil && plain != predicted {
			t.Fatalf("rows read with predictions differ from rows read one by one:\n%q\n%q", predicted, plain)
		}
	})
}

// fuzzResults reads up to 4 results from in as a reader does, each into a bounded chunk
// buffer (64 bytes: a value longer than what is left is read in part), with or without
// predicting rows of 3 bytes after each value. It returns what into was asked and the buffers'
// bytes, and the first error. A result read whole never holds more value bytes than the input.
func fuzzResults(t *testing.T, in []byte, predict bool) (string, error) {
	w := newWireConn(&fuzzConn{r: bytes.NewReader(in)})
	w.rd.SetMaxMessageSize(1 << 16)
	var log []byte
	filled := 0
	for range 4 {
		buf := make([]byte, 0, 64)
		var ahead func()
		if predict {
			ahead = func() {
				for end := len(buf); end+3 <= cap(buf) && w.predictRow(buf[end:end+3:end+3]); end += 3 {
				}
			}
		}
		err := w.result(&rowSink{ahead: ahead, into: func(n int) ([]byte, error) {
			log = strconv.AppendInt(append(log, ' '), int64(n), 10)
			if n < 0 {
				return nil, nil
			}
			k := min(n, cap(buf)-len(buf))
			start := len(buf)
			buf = buf[:start+k]
			return buf[start:], nil
		}, crc: func(v uint32, ok bool) {
			log = strconv.AppendUint(append(log, " crc "...), uint64(v), 10)
			log = strconv.AppendBool(log, ok)
		}})
		log = append(append(log, '|'), buf...)
		if err != nil {
			return string(log), err
		}
		if filled += len(buf); filled > len(in) {
			t.Fatalf("%d bytes of values read from %d bytes of input", filled, len(in))
		}
	}
	return string(log), nil
}

// fuzzConn is a net.Conn that reads from r (a wireConn needs only Read), and a
// pgrepl.VectorReader as a batched TCP socket is: a read runs on from p into more.
type fuzzConn struct {
	net.Conn
	r io.Reader
}

func (c *fuzzConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *fuzzConn) ReadVector(bufs [][]byte) (int, error) {
	n, err := io.ReadFull(c.r, bufs[0])
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	}
	for _, b := range bufs[1:] {
		k, err := c.r.Read(b)
		n += k
		if err == io.EOF {
			return n, nil // reported by the next read
		}
		if err != nil || k < len(b) {
			return n, err
		}
	}
	return n, nil
}

// TestTakeOverAfterSlowWrite is the flake that had the readers' protocol reverted (a reply
// misframed as "message type 0, length 0"), made deterministic. When a write of pgconn's takes
// longer than 15 ms, pgconn starts a background reader on the socket; if the server's whole
// reply arrives before the write returns, that reader has read it and is blocked in the next
// Read when pgconn stops it (Stop only marks it stopping). The connection completes from the
// buffered reply, and after Hijack that forgotten Read takes the first bytes of the first
// reply sent on the taken-over socket: the reader then frames messages from the middle of a
// row. Here every write of the connection's start-up stalls for 200 ms; the query after the
// take-over must come back whole.
func TestTakeOverAfterSlowWrite(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, "create table t as select g, md5(g::text) from generate_series(1, 10000) g; checkpoint")
	rel := c.QueryValue(t, "select pg_relation_filepath('t')")
	want, err := os.ReadFile(filepath.Join(c.DataDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	const n = 64 << 10 // more than the background reader's 8 KiB read
	if len(want) < n {
		t.Fatalf("relation of %d bytes, want at least %d", len(want), n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 3 {
		cfg, err := pgconn.ParseConfig(c.SuperDSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		fast := pgtest.SlowWrites(cfg)
		pc, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fast()
		w, err := takeOver(ctx, pc)
		if err != nil {
			t.Fatalf("connection %d: take over: %v", i, err)
		}
		// A reply that lost its first bytes may also wait forever for a length it misread.
		if err := w.nc.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		w.queue(readOne, []uint32{oidText, oidInt8, oidInt8}, [][]byte{[]byte(rel), []byte("0"), []byte(strconv.Itoa(n))})
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		var vals [][]byte
		err = w.result(&rowSink{into: values(&vals)})
		_ = w.close()
		got := bytes.Join(vals, nil)
		if err != nil {
			t.Fatalf("connection %d: the first reply after the take-over: %v", i, err)
		}
		if !bytes.Equal(got, want[:n]) {
			t.Fatalf("connection %d: %d bytes, not the file's first %d", i, len(got), n)
		}
	}
}
