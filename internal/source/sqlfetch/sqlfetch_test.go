package sqlfetch

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
)

func TestRelFileName(t *testing.T) {
	for name, want := range map[string]string{
		"16384": "16384|", "16384_fsm": "16384|fsm", "16384_vm.3": "16384|vm", "16384.12": "16384|",
		"16384_init": "16384|init", "pg_filenode.map": "", "16384_foo": "", "16384.": "", "16384.x": "", "": "",
	} {
		rel, fork, ok := relFileName(name)
		got := ""
		if ok {
			got = rel + "|" + fork
		}
		if got != want {
			t.Errorf("relFileName(%q) = %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]bool{"t3_16384": true, "t3_16384_fsm.1": true, "t_16384": false, "t3": false, "16384": false, "t3_x": false} {
		if tempRelName(name) != want {
			t.Errorf("tempRelName(%q) != %v", name, want)
		}
	}
}

// filter applies BASE_BACKUP's exclusions: temp and excluded files at any depth, unlogged
// relations' non-init forks and temporary relations in database directories only, pg_control
// kept for the end.
func TestFilter(t *testing.T) {
	in := []entry{
		{rel: "PG_VERSION"}, {rel: "backup_label"}, {rel: "base", dir: true}, {rel: "base/5", dir: true},
		{rel: "base/5/100"}, {rel: "base/5/200"}, {rel: "base/5/200_fsm"}, {rel: "base/5/200_init"},
		{rel: "base/5/200.1"}, {rel: "base/5/t3_300"}, {rel: "base/5/pg_internal.init"},
		{rel: "base/pgsql_tmp", dir: true}, {rel: "base/pgsql_tmp/pgsql_tmp1.0"},
		{rel: "global", dir: true}, {rel: "global/pg_control"}, {rel: "global/pg_internal.init.123"},
		{rel: "global/t3_300"}, {rel: "pg_stat_tmp", dir: true}, {rel: "postmaster.pid"},
		{rel: "postgresql.auto.conf"}, {rel: "postgresql.auto.conf.tmp"}, {rel: "x", dir: true}, {rel: "x/backup_manifest"},
	}
	var got []string
	for _, e := range filter(in, false) {
		got = append(got, e.rel)
	}
	want := []string{"PG_VERSION", "base", "base/5", "base/5/100", "base/5/200_init", "global", "global/t3_300", "pg_stat_tmp", "postgresql.auto.conf", "x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("filter:\n got %q\nwant %q", got, want)
	}
	ts := []entry{{rel: "PG_15_1", dir: true}, {rel: "PG_15_1/5", dir: true}, {rel: "PG_15_1/5/7"}, {rel: "PG_15_1/5/8"},
		{rel: "PG_15_1/5/8_init"}, {rel: "PG_15_1/5/t2_9"}}
	got = nil
	for _, e := range filter(ts, true) {
		got = append(got, e.rel)
	}
	if want := []string{"PG_15_1", "PG_15_1/5", "PG_15_1/5/7", "PG_15_1/5/8_init"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tablespace filter: got %q, want %q", got, want)
	}
}

// planTasks: large files in chunk-sized tasks of their own, small ones batched in order.
func TestPlanTasks(t *testing.T) {
	sizes := []int64{10, 2500, 300, 400, 0, 900}
	tasks := planTasks(sizes, []int{0, 1, 2, 3, 5}, 1000, 2)
	var got [][]piece
	for _, tk := range tasks {
		got = append(got, tk.pieces)
	}
	want := [][]piece{
		{{m: 0, off: 0, n: 10}},
		{{m: 1, off: 0, n: 1000}}, {{m: 1, off: 1000, n: 1000}}, {{m: 1, off: 2000, n: 500}},
		{{m: 2, n: 300}, {m: 3, n: 400}},
		{{m: 5, n: 900}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("planTasks:\n got %v\nwant %v", got, want)
	}
}

// pageChecksum agrees with the server on every page of a real relation (a cluster with data
// checksums; the pages are flushed by a checkpoint and read from disk).
func TestPageChecksum(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, "create table t (i int, pad text); insert into t select g, md5(g::text) from generate_series(1, 20000) g; create index on t (i)")
	c.Exec(t, "vacuum t")
	c.Exec(t, "checkpoint")
	pages := 0
	for _, q := range []string{"select pg_relation_filepath('t')", "select pg_relation_filepath('t_i_idx')"} {
		rel := c.QueryValue(t, q)
		for _, suffix := range []string{"", "_fsm", "_vm"} {
			b, err := os.ReadFile(filepath.Join(c.DataDir, rel+suffix))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; (k+1)*8192 <= len(b); k++ {
				page := b[k*8192 : (k+1)*8192]
				if pageIsNew(page) {
					continue
				}
				pages++
				if got, want := pageChecksum(page, uint32(k)), binary.LittleEndian.Uint16(page[8:]); got != want {
					t.Fatalf("%s%s block %d: checksum %04x, page has %04x", rel, suffix, k, got, want)
				}
				if !pageOK(page, uint32(k), 1<<62) {
					t.Fatalf("%s%s block %d: pageOK false", rel, suffix, k)
				}
				page[100] ^= 1
				if pageOK(page, uint32(k), 1<<62) || !pageOK(page, uint32(k), pageLSN(page)) {
					t.Fatalf("%s%s block %d: a flipped bit is not caught (or a page newer than the start is)", rel, suffix, k)
				}
			}
		}
	}
	if pages < 50 {
		t.Fatalf("checked only %d pages", pages)
	}
	t.Logf("%d pages agree", pages)
}

func TestChecksummed(t *testing.T) {
	for p, want := range map[string]int{
		"base/5/16384": 0, "base/5/16384.3": 3, "global/1262": 0, "pg_tblspc/16400/PG_15_1/5/7_fsm": 0,
		"base/5/PG_VERSION": -1, "global/pg_control": -1, "global/pg_filenode.map": -1, "pg_xact/0000": -1,
		"base/5/pg_internal.init": -1, "base/5/16384.x": -1,
	} {
		seg, ok := checksummed(p)
		got := int(seg)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("checksummed(%q) = %d, want %d", p, got, want)
		}
	}
}
