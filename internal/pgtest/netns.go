package pgtest

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// InOwnNetns runs the calling top-level test again in a private network namespace
// (unshare -n; root only), where BlackHole can drop one TCP connection's packets on the
// loopback device without touching anyone else's traffic: packets of that connection are
// dropped in the kernel in both directions, as a cut network or a dead host does, so that TCP
// keepalives and TCP_USER_TIMEOUT are what notices it (a userland proxy would acknowledge them
// itself). In the parent it returns true and the test must return; the child's outcome is the
// test's. Under WALWEAVE_REQUIRE_PG=1 (CI: root, scripts/setup.sh installs iproute2) a missing
// namespace or tool fails the test; elsewhere it skips it.
func InOwnNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("WALWEAVE_NETNS") == "1" {
		for _, args := range [][]string{
			{"qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"},
			{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"},
			{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit"},
			{"qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "blackhole"},
		} {
			if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
				t.Fatalf("tc %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return false
	}
	Require(t)
	skip := t.Skipf
	if os.Getenv("WALWEAVE_REQUIRE_PG") == "1" {
		skip = t.Fatalf
	}
	if os.Getuid() != 0 {
		skip("black-holing one connection needs root (a private network namespace and tc)")
	}
	for _, p := range []string{"unshare", "tc", "ip"} {
		if _, err := exec.LookPath(p); err != nil {
			skip("black-holing one connection needs %s (Debian: apt-get install iproute2)", p)
		}
	}
	if err := exec.Command("unshare", "-n", "tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb").Run(); err != nil {
		skip("no private network namespace with tc htb here: %v", err)
	}
	cmd := exec.Command("unshare", "-n", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0],
		"-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), "WALWEAVE_NETNS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("run in a private network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("in the private network namespace: %v", err)
	}
	return true
}

var tcPrio atomic.Int32

// BlackHole drops every packet of the connection of backend pid, both ways, from now on (in
// the private network namespace of InOwnNetns).
func (c *Cluster) BlackHole(t *testing.T, pid int) {
	t.Helper()
	port := c.QueryValue(t, "select client_port from pg_stat_activity where pid = $1", pid)
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("client port of pid %d: %q", pid, port)
	}
	for _, dir := range []string{"sport", "dport"} {
		prio := strconv.Itoa(int(tcPrio.Add(1)))
		args := []string{"filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", prio,
			"u32", "match", "ip", dir, port, "0xffff", "flowid", "1:20"}
		if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
			t.Fatalf("tc %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Logf("black hole on the connection of pid %d (client port %s)", pid, port)
}
