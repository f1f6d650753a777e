package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// What "replicator bench scale" reads about processes, from Linux's /proc:
// a process and its descendants (the daemon and its plugin processes),
// their resident memory, CPU time and system calls.

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procTree returns pid and every process descended from it.
func procTree(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes (bench scale needs Linux's /proc): %w", err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(p)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.ppid] = append(children[st.ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// procStat is what the bench uses of /proc/PID/stat.
type procStat struct {
	ppid      int
	cpu       time.Duration // utime + stime
	startTime uint64        // in clock ticks since boot: tells a reused pid apart
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15,
	// starttime 22.
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	num := func(k int) uint64 { v, _ := strconv.ParseUint(f[k-3], 10, 64); return v }
	return procStat{
		ppid:      int(num(4)),
		cpu:       time.Duration(num(14)+num(15)) * clockTick,
		startTime: num(22),
	}, nil
}

// cpuTime is the CPU time of a process: the sum of its threads' time on a
// CPU from /proc/PID/task/*/schedstat (nanoseconds), or, where the kernel
// keeps no schedstat, utime+stime (10 ms resolution).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err == nil && len(tasks) > 0 {
		var sum time.Duration
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue // the thread exited
			}
			f := strings.Fields(string(b))
			if len(f) == 0 {
				ok = false
				break
			}
			ns, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				ok = false
				break
			}
			sum += time.Duration(ns)
		}
		if ok {
			return sum, nil
		}
	}
	st, err := readStat(pid)
	return st.cpu, err
}

// statusKB reads a "Name:   N kB" line of /proc/PID/status.
func statusKB(pid int, name string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && k == name {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, name)
}

// pssKB reads the proportional set size from /proc/PID/smaps_rollup.
func pssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup has no Pss", pid)
}

// ioSyscalls is the read and write system calls of a process
// (/proc/PID/io syscr + syscw): every request a plugin serves reads its
// socket, so a plugin whose count did not move served none.
func ioSyscalls(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "syscr" || k == "syscw") {
			x, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/io: %s: %w", pid, k, err)
			}
			n += x
		}
	}
	return n, nil
}

// procSample is the state of a process tree at one moment.
type procSample struct {
	at    time.Time
	procs map[procKey]procInfo
}

// procKey names a process across pid reuse.
type procKey struct {
	pid   int
	start uint64
}

type procInfo struct {
	rssKB, hwmKB int64
	// anonKB is the process's own memory (RssAnon); the rest of its RSS
	// is file-backed, mostly its executable's pages (shared with other
	// processes of the same executable).
	anonKB int64
	// pssKB is the RSS with each shared page divided among the
	// processes that map it (0 where the kernel does not say).
	pssKB    int64
	cpu      time.Duration
	syscalls uint64
}

// sampleTree reads every process of pid's tree. A process that exits
// while it is read is left out.
func sampleTree(pid int) (procSample, error) {
	pids, err := procTree(pid)
	if err != nil {
		return procSample{}, err
	}
	s := procSample{at: time.Now(), procs: map[procKey]procInfo{}}
	for _, p := range pids {
		st, err := readStat(p)
		if err != nil {
			continue
		}
		var pi procInfo
		if pi.rssKB, err = statusKB(p, "VmRSS"); err != nil {
			continue
		}
		pi.hwmKB, _ = statusKB(p, "VmHWM")
		pi.anonKB, _ = statusKB(p, "RssAnon")
		pi.pssKB, _ = pssKB(p)
		if pi.cpu, err = cpuTime(p); err != nil {
			continue
		}
		pi.syscalls, _ = ioSyscalls(p)
		s.procs[procKey{p, st.startTime}] = pi
	}
	if len(s.procs) == 0 {
		return s, fmt.Errorf("process %d is gone", pid)
	}
	return s, nil
}

// rssKB is the resident memory of the whole tree.
func (s procSample) rssKB() int64 {
	var n int64
	for _, p := range s.procs {
		n += p.rssKB
	}
	return n
}

// anonKB and pssKB are the tree's anonymous memory and proportional set
// size.
func (s procSample) anonKB() (n int64) {
	for _, p := range s.procs {
		n += p.anonKB
	}
	return n
}

func (s procSample) pssKB() (n int64) {
	for _, p := range s.procs {
		n += p.pssKB
	}
	return n
}

// rssOf is the resident memory of one process of the tree (0 if absent).
func (s procSample) rssOf(pid int) int64 {
	for k, p := range s.procs {
		if k.pid == pid {
			return p.rssKB
		}
	}
	return 0
}

// usage compares two samples of the same tree: CPU time used and read or
// write system calls made in between by the processes present in both,
// and how many processes came or went.
func usage(a, b procSample, except int) (cpu time.Duration, syscalls uint64, changed int) {
	for k, pb := range b.procs {
		pa, ok := a.procs[k]
		if !ok {
			changed++
			continue
		}
		cpu += pb.cpu - pa.cpu
		if k.pid != except {
			syscalls += pb.syscalls - pa.syscalls
		}
	}
	for k := range a.procs {
		if _, ok := b.procs[k]; !ok {
			changed++
		}
	}
	return cpu, syscalls, changed
}
