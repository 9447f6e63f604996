package sqlfetch

import "testing"

// The readers' database: the connection string's, else PGDATABASE, else postgres, decided by
// the one connection-string parser (a host that merely contains "dbname" names no database).
func TestConnConfigDatabase(t *testing.T) {
	for _, tc := range []struct {
		cs, env, want string
	}{
		{"host=dbname-proxy user=u", "", "postgres"},
		{"host=database.example user=u", "", "postgres"},
		{"host=h dbname=app", "", "app"},
		{"host=h", "fromenv", "fromenv"},
		{"postgres://u@dbname-host:5432", "", "postgres"},
		{"postgres://u@h/app?sslmode=disable", "", "app"},
		{"postgres://u@h?dbname=app", "", "app"},
	} {
		t.Setenv("PGDATABASE", tc.env)
		s := New(Config{ConnString: tc.cs, Jobs: 2})
		cc, err := s.connConfig()
		if err != nil {
			t.Fatalf("%q: %v", tc.cs, err)
		}
		if cc.Database != tc.want {
			t.Errorf("%q with PGDATABASE=%q: database %q, want %q", tc.cs, tc.env, cc.Database, tc.want)
		}
	}
}
