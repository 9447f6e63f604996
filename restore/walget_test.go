package restore

import (
	"os/exec"
	"strings"
	"testing"
)

func TestWALGetCommand(t *testing.T) {
	got := WALGetCommand("/usr/local/bin/walweave", "/var/lib/wal archive/it's 100%", "")
	want := `'/usr/local/bin/walweave' wal get %f %p --from '/var/lib/wal archive/it'\''s 100%%'`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// What the shell receives once PostgreSQL replaced %f, %p and %%: the arguments intact.
	cmd := strings.NewReplacer("%f", "000000010000000000000003", "%p", "pg_wal/RECOVERYXLOG", "%%", "%").Replace(
		WALGetCommand("printf", "", `aws s3 cp "s3://b/{segment}" - || exit 1 # 50% 'x'`))
	out, err := exec.Command("/bin/sh", "-c", strings.Replace(cmd, "'printf'", "printf '%s|'", 1)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := `wal|get|000000010000000000000003|pg_wal/RECOVERYXLOG|--from-exec|aws s3 cp "s3://b/{segment}" - || exit 1 # 50% 'x'|`; string(out) != want {
		t.Fatalf("the shell got %s\nwant %s", out, want)
	}
}
