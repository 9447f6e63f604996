package layout

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/walweave/walweave/"

// imports lists every package of the module with the module's packages it imports (non-test
// imports, as `go list` gives them), by path relative to the module.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(f[0], module)
		m[pkg] = nil
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module) {
				m[pkg] = append(m[pkg], strings.TrimPrefix(imp, module))
			}
		}
	}
	if len(m) < 10 {
		t.Fatalf("go list found %d packages: %s", len(m), out)
	}
	return m
}

func under(pkg string, prefixes ...string) bool {
	for _, p := range prefixes {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

func isProgram(pkg string) bool { return under(pkg, "cmd", "examples", "bench") }

// TestLayoutRules: each rule of docs/architecture.md's "Rules the layout keeps" that is about
// imports, checked on every package; a broken rule names the package and the import.
func TestLayoutRules(t *testing.T) {
	m := imports(t)
	harness := []string{"internal/pgtest", "internal/verifytest", "source/sourcetest"}
	rules := []struct {
		rule    string
		applies func(pkg string) bool
		forbid  func(pkg, imp string) bool
	}{
		{"ringbuf, tarw and pgformat import no other walweave package",
			func(p string) bool { return under(p, "ringbuf", "tarw", "pgformat") },
			func(_, _ string) bool { return true }},
		{"sources know no weaver and no WAL",
			func(p string) bool { return under(p, "source", "internal/source") },
			func(_, imp string) bool { return under(imp, "mux", "fleet", "walstream", "ringbuf") }},
		{"the WAL side imports only pgrepl, pgformat, ringbuf and internal/pgerr",
			func(p string) bool { return under(p, "walstream") },
			func(_, imp string) bool {
				return !under(imp, "internal/pgrepl", "ringbuf", "pgformat", "internal/pgerr")
			}},
		{"verify and restore read streams only",
			func(p string) bool {
				return under(p, "verify", "restore")
			},
			func(_, imp string) bool {
				return under(imp, "mux", "fleet", "source", "internal/source", "internal/pgrepl", "walstream")
			}},
		{"walarchive reuses the WAL receiver and knows no orchestrator and no data source",
			func(p string) bool { return under(p, "walarchive") },
			func(_, imp string) bool { return under(imp, "mux", "fleet", "source", "internal/source") }},
		{"only fleet and the programs import mux",
			func(p string) bool { return !isProgram(p) && !under(p, "fleet", "mux") },
			func(_, imp string) bool { return under(imp, "mux") }},
		{"only the programs import fleet",
			func(p string) bool { return !isProgram(p) && !under(p, "fleet") },
			func(_, imp string) bool { return under(imp, "fleet") }},
		{"no library package imports a program",
			func(p string) bool { return !isProgram(p) },
			func(_, imp string) bool { return isProgram(imp) }},
		{"no library package imports the test harness",
			func(p string) bool { return !isProgram(p) && !under(p, harness...) },
			func(_, imp string) bool { return under(imp, harness...) }},
	}
	for _, r := range rules {
		n := 0
		for pkg, imps := range m {
			if !r.applies(pkg) {
				continue
			}
			n++
			for _, imp := range imps {
				if r.forbid(pkg, imp) {
					t.Errorf("%s: %s imports %s", r.rule, pkg, imp)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: applies to no package (renamed?)", r.rule)
		}
	}
}

// TestLayoutRulesCanFail: the checker sees a forbidden import (walstream importing mux would
// break "the WAL side imports only pgrepl, pgformat, ringbuf and internal/pgerr"): go list's output is read as expected.
func TestLayoutRulesCanFail(t *testing.T) {
	m := imports(t)
	if got := m["mux"]; !contains(got, "walstream") || !contains(got, "tarw") {
		t.Fatalf("mux's imports as read: %v; want walstream and tarw among them", got)
	}
	if got := m["fleet"]; !contains(got, "mux") {
		t.Fatalf("fleet's imports as read: %v; want mux", got)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
