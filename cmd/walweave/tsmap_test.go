package main

import (
	"strings"
	"testing"
)

// -T follows pg_basebackup: "\=" is an "=" inside a directory name, a second unescaped "="
// (a=b=c) is refused rather than taken as part of the new directory.
func TestParseTablespaceMapping(t *testing.T) {
	for in, want := range map[string][2]string{
		"/a=/b":              {"/a", "/b"},
		`/a\=x=/b`:           {"/a=x", "/b"},
		`/a=/b\=c`:           {"/a", "/b=c"},
		"pg_tblspc/16384=/n": {"pg_tblspc/16384", "/n"},
		`/a\b=/c`:            {`/a\b`, "/c"},
	} {
		o, n, err := parseTablespaceMapping(in)
		if err != nil || o != want[0] || n != want[1] {
			t.Errorf("%q: %q %q %v, want %q", in, o, n, err, want)
		}
	}
	for _, bad := range []string{"", "/a", "=/b", "/a=", "/a=/b=/c", "a=b=c", `/a\==`} {
		if o, n, err := parseTablespaceMapping(bad); err == nil {
			t.Errorf("%q accepted as %q=%q", bad, o, n)
		}
	}
	m := mapFlag{}
	if err := m.Set("a=b=c"); err == nil {
		t.Errorf("-T a=b=c accepted: %v", m)
	}
}

func FuzzParseTablespaceMapping(f *testing.F) {
	for _, s := range []string{"/a=/b", `/a\=x=/b`, "a=b=c", `\\=`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, n, err := parseTablespaceMapping(s)
		if err != nil {
			return
		}
		if o == "" || n == "" {
			t.Fatalf("%q: empty side %q=%q", s, o, n)
		}
		// Written back with "=" escaped, the mapping parses to the same two directories.
		esc := func(d string) string { return strings.ReplaceAll(d, "=", `\=`) }
		o2, n2, err := parseTablespaceMapping(esc(o) + "=" + esc(n))
		if err != nil || o2 != o || n2 != n {
			t.Fatalf("%q -> %q=%q -> %q=%q %v", s, o, n, o2, n2, err)
		}
	})
}
