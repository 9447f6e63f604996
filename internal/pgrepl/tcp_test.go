package pgrepl

import (
	"context"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestApplyTCP: the keepalive and user-timeout settings reach the
// server's side of a replication connection (as per-connection GUCs) and are set on ours; a
// setting in the connection string's options wins on the server.
func TestApplyTCP(t *testing.T) {
	c := server(t)
	cfg, err := ParseConfig(c.DSN() + " options='-c tcp_keepalives_count=9'")
	if err != nil {
		t.Fatal(err)
	}
	ApplyTCP(cfg, TCP{KeepaliveIdle: 7 * time.Second, KeepaliveInterval: 3 * time.Second,
		KeepaliveCount: 4, UserTimeout: 25 * time.Second})
	ctx := testCtx(t)
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for name, want := range map[string]string{"tcp_keepalives_idle": "7", "tcp_keepalives_interval": "3",
		"tcp_keepalives_count": "9", "tcp_user_timeout": "25000"} {
		got, err := Show(ctx, conn, name)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("server: %s = %s, want %s", name, got, want)
		}
	}
	if runtime.GOOS != "linux" {
		return
	}
	raw, err := conn.Conn().(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	_ = raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{"keepalive": {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
			"idle": {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE}, "interval": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
			"count": {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT}, "user timeout": {syscall.IPPROTO_TCP, tcpUserTimeout}} {
			got[name], _ = syscall.GetsockoptInt(int(fd), opt[0], opt[1])
		}
	})
	want := map[string]int{"keepalive": 1, "idle": 7, "interval": 3, "count": 4, "user timeout": 25000}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("client socket: %s = %d, want %d", k, got[k], v)
		}
	}
}
