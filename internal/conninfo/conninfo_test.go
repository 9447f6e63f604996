package conninfo

import (
	"maps"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"host=dbname-proxy user=u", map[string]string{"host": "dbname-proxy", "user": "u"}},
		{"  host = h   port=5433 ", map[string]string{"host": "h", "port": "5433"}},
		{`password='a b\'c\\d' user=x`, map[string]string{"password": `a b'c\d`, "user": "x"}},
		{`options='-c dbname=x'`, map[string]string{"options": "-c dbname=x"}},
		{"host=a\tdbname=b", map[string]string{"host": "a", "dbname": "b"}},
		{"dbname= host=h", map[string]string{"dbname": "host=h"}},
		{"postgres://u:p@h:5433/app?sslmode=disable", map[string]string{"user": "u", "password": "p", "host": "h", "port": "5433", "dbname": "app", "sslmode": "disable"}},
		{"postgresql://dbname-host", map[string]string{"host": "dbname-host"}},
		{"postgres://h/?dbname=x", map[string]string{"host": "h", "dbname": "x"}},
		{"postgres://h/a%20b", map[string]string{"host": "h", "dbname": "a b"}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"host", "host='h", "=x", "postgres://h:port/"} {
		if got, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, got)
		}
	}
}

func TestDatabase(t *testing.T) {
	for _, tc := range []struct {
		in, env, want string
		ok            bool
	}{
		{"host=dbname-proxy", "", "", false},
		{"host=dbname-proxy", "e", "e", true},
		{"host=h dbname=d", "e", "d", true},
		{"host=h database=d", "", "d", true},
		{"host=h dbname=''", "", "", false},
		{"postgres://dbname@h", "", "", false},
		{"postgres://h/d", "e", "d", true},
		{"postgres://h?dbname=d", "", "d", true},
		{"postgres://h/", "", "", false},
		{"host='unterminated", "e", "", false},
	} {
		t.Setenv("PGDATABASE", tc.env)
		got, ok := Database(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Database(%q) with PGDATABASE=%q = %q, %v; want %q, %v", tc.in, tc.env, got, ok, tc.want, tc.ok)
		}
	}
}

// Quote's output reads back as the value it quoted.
func TestQuoteRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", "a b", `it's`, `back\slash`, "tab\there", "=", "'"} {
		got, err := Parse("k=" + Quote(v) + " next=1")
		if err != nil || got["k"] != v || got["next"] != "1" {
			t.Errorf("Quote(%q) = %s reads back as %v, %v", v, Quote(v), got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"host=h dbname=d", `password='a\'b'`, "postgres://u:p@h:1/d?x=y", "k=" + Quote("a b'c")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil || IsURL(s) {
			return
		}
		// Rebuilt from its keywords with Quote, a keyword/value string reads back the same.
		rebuilt := ""
		for k, v := range m {
			rebuilt += k + "=" + Quote(v) + " "
		}
		again, err := Parse(rebuilt)
		if err != nil || !maps.Equal(m, again) {
			t.Fatalf("%q: %v rebuilt as %q reads %v, %v", s, m, rebuilt, again, err)
		}
	})
}
