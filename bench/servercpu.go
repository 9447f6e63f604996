package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times (100 on Linux).
const clockTick = 100

// cpu returns the CPU time the server's processes have used so far: the postmaster's own and
// its reaped children's (cutime, cstime: backends and walsenders that have exited), plus the
// live children's. -1 when unknown (a server given with -d).
func (s *server) cpu() time.Duration {
	if s.dataDir == "" {
		return -1
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, "postmaster.pid"))
	if err != nil {
		return -1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return -1
	}
	ticks := int64(0)
	ppid, own, reaped, ok := procTimes(pid)
	if !ok {
		return -1
	}
	_ = ppid
	ticks += own + reaped
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if pp, own, reaped, ok := procTimes(child); ok && pp == pid {
			ticks += own + reaped
		}
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// procTimes reads a process's parent, utime+stime and cutime+cstime (clock ticks).
func procTimes(pid int) (ppid int, own, reaped int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is the state (field 3); ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return ppid, n(11) + n(12), n(13) + n(14), true
}
