package fleet

import "testing"

// A node's SQL session goes to the database its connection string names, else PGDATABASE,
// else postgres: decided by the one connection-string parser, so a host that merely contains
// "dbname" names no database.
func TestSQLConfigDatabase(t *testing.T) {
	for _, tc := range []struct {
		cs, env, want string
	}{
		{"host=dbname-proxy user=u", "", "postgres"},
		{"host=h dbname=app", "", "app"},
		{"host=h dbname=app", "other", "app"},
		{"host=h", "fromenv", "fromenv"},
		{"postgres://u@dbname-host:5432", "", "postgres"},
		{"postgres://u@dbname-host:5432/", "", "postgres"},
		{"postgres://u@h/app?sslmode=disable", "", "app"},
		{"postgres://u@h?dbname=app", "", "app"},
		{"host=h options='-c dbname=x'", "", "postgres"},
	} {
		t.Setenv("PGDATABASE", tc.env)
		f := &fleet{nodes: []Node{{Name: "n", ConnString: tc.cs}}}
		pc, err := f.sqlConfig(0)
		if err != nil {
			t.Fatalf("%q: %v", tc.cs, err)
		}
		if pc.Database != tc.want {
			t.Errorf("%q with PGDATABASE=%q: database %q, want %q", tc.cs, tc.env, pc.Database, tc.want)
		}
	}
}
