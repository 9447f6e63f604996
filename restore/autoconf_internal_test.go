package restore

import (
	"strings"
	"testing"
)

func TestRewriteAutoConf(t *testing.T) {
	conf := "# Do not edit\nwork_mem = '4MB'\nallow_in_place_tablespaces = 'on'\n" +
		"# walweave: tablespace 16384 was at /srv/a\n#walweave:  tablespace 16385 was at /srv/b c\nallow_in_place_tablespaces = on\n"
	if got := tablespaceLocations([]byte(conf)); got["16384"] != "/srv/a" || got["16385"] != "/srv/b c" {
		t.Fatalf("locations %v", got)
	}
	// One relocated, one left in place: its comment and the setting stay.
	out := string(rewriteAutoConf([]byte(conf), map[string]bool{"16384": true}, true, nil))
	if strings.Contains(out, "16384") || !strings.Contains(out, "16385") || !strings.Contains(out, "\nallow_in_place_tablespaces = on\n") {
		t.Fatalf("partial:\n%s", out)
	}
	// All relocated: walweave's lines go, the user's own quoted setting stays.
	out = string(rewriteAutoConf([]byte(conf), map[string]bool{"16384": true, "16385": true}, false, []string{"primary_conninfo = 'x'"}))
	want := "# Do not edit\nwork_mem = '4MB'\nallow_in_place_tablespaces = 'on'\n" + RecoveryComment + "\nprimary_conninfo = 'x'\n"
	if out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}
