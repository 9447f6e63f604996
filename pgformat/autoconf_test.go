package pgformat

import (
	"reflect"
	"testing"
)

func TestTablespaceLines(t *testing.T) {
	ts := []TablespaceLocation{{"16384", "/srv/a"}, {"16385", "/srv/b c"}}
	got := string(AppendTablespaceLines([]byte("work_mem = '4MB'"), ts))
	want := "work_mem = '4MB'\n# walweave: tablespace 16384 was at /srv/a\n# walweave: tablespace 16385 was at /srv/b c\nallow_in_place_tablespaces = on\n"
	if got != want {
		t.Fatalf("got:\n%s", got)
	}
	if string(AppendTablespaceLines([]byte("x"), nil)) != "x" {
		t.Fatal("no tablespaces changed the content")
	}
	pts, rest := ParseTablespaceLines([]byte(got))
	if !reflect.DeepEqual(pts, ts) || string(rest) != "work_mem = '4MB'\n" {
		t.Fatalf("%v %q", pts, rest)
	}
	// Tolerant comments; the user's quoted setting stays; without comments the unquoted
	// line is not walweave's and stays too.
	conf := "allow_in_place_tablespaces = 'on'\n#walweave:  Tablespace 7 WAS at /x y \r\nallow_in_place_tablespaces=true\n"
	pts, rest = ParseTablespaceLines([]byte(conf))
	if len(pts) != 1 || pts[0] != (TablespaceLocation{"7", "/x y"}) || string(rest) != "allow_in_place_tablespaces = 'on'\n" {
		t.Fatalf("%v %q", pts, rest)
	}
	if _, rest := ParseTablespaceLines([]byte("allow_in_place_tablespaces = on\n")); string(rest) != "allow_in_place_tablespaces = on\n" {
		t.Fatalf("user line removed: %q", rest)
	}
	for _, bad := range []string{"# walweave: tablespace x was at /a", "# walweave: tablespace 1 was at ", "walweave: tablespace 1 was at /a", "# walweave: tablespace1 was at /a"} {
		if _, ok := ParseTablespaceComment(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
