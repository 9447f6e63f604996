package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Peak RSS needs care. ru_maxrss of a process is at least the high-water RSS of the memory
// it had before exec, and os/exec starts children with vfork semantics (CLONE_VM): a child
// of this process would report this process's own peak (tens of MiB) as a floor. So the
// measured program is forked by /bin/sh instead (a ~1 MiB process), the shell exits at once,
// the program is re-parented to this process (a child subreaper), and it is reaped here with
// wait4, which gives its own rusage: user+sys time and ru_maxrss, children it waited for
// included (pg_basebackup's WAL streaming process).

// spawnScript starts "$@" in the background with stdout and stderr redirected to $1 and $2,
// and prints its pid. A background command of a non-interactive shell reads /dev/null. The
// shell ends by exec'ing echo: when dash exits by itself it sometimes reaps a program that
// has already exited, and that program's rusage would be lost.
const spawnScript = `out=$1; err=$2; shift 2; "$@" >"$out" 2>"$err" & exec echo $!`

// sample is one measured run.
type sample struct {
	wall   time.Duration
	cpu    time.Duration // user + sys of the program (and of the children it waited for)
	maxRSS int64         // peak resident set, KiB
	srvCPU time.Duration // CPU time of the server's processes during the run (scratch cluster only)
	err    error
}

// becomeSubreaper makes orphaned descendants this process's children, so that measure can
// reap the programs /bin/sh started.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// measure runs prog with stdout on /dev/null (a real file, no pipe in between) and returns
// its wall time and rusage. The wall time includes starting /bin/sh (about a millisecond).
func measure(ctx context.Context, prog string, args []string) sample {
	errFile, err := os.CreateTemp("", "walweave-bench-stderr-")
	if err != nil {
		return sample{err: err}
	}
	errFile.Close()
	defer os.Remove(errFile.Name())

	start := time.Now()
	pid, err := spawn(ctx, errFile.Name(), prog, args)
	if err != nil {
		return sample{err: err}
	}
	ws, ru, err := reap(ctx, pid)
	s := sample{wall: time.Since(start)}
	s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.maxRSS = ru.Maxrss
	if err == nil && !(ws.Exited() && ws.ExitStatus() == 0) {
		err = errors.New(describeStatus(ws))
	}
	if err != nil {
		msg, _ := os.ReadFile(errFile.Name())
		s.err = fmt.Errorf("%s: %w: %s", prog, err, strings.TrimSpace(lastLines(string(msg), 5)))
	}
	return s
}

// spawn starts prog through /bin/sh and returns its pid once the shell has exited.
func spawn(ctx context.Context, stderrPath, prog string, args []string) (int, error) {
	shArgs := append([]string{"-c", spawnScript, "sh", os.DevNull, stderrPath, prog}, args...)
	cmd := exec.CommandContext(ctx, "/bin/sh", shArgs...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", prog, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("start %s: unexpected shell output %q", prog, out)
	}
	return pid, nil
}

// reap waits for pid (a re-parented orphan) and returns its status and rusage. When ctx ends
// first the program gets SIGTERM, then SIGKILL ten seconds later.
func reap(ctx context.Context, pid int) (syscall.WaitStatus, syscall.Rusage, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}()
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err := syscall.Wait4(pid, &ws, 0, &ru)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return ws, ru, fmt.Errorf("wait4 %d: %w (reaped elsewhere: not measured)", pid, err)
		}
		if ctx.Err() != nil {
			return ws, ru, ctx.Err()
		}
		return ws, ru, nil
	}
}

// describeStatus renders a non-zero exit.
func describeStatus(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
