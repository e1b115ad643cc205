package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p2pd/p2pd/internal/childproc"
)

// child is a helper or daemon process the harness started. Its stdout lines
// are logged and offered on lines; stderr goes to the log file only.
type child struct {
	name  string
	cmd   *exec.Cmd
	lines chan string   // stdout lines; later lines are dropped if nobody reads
	done  chan struct{} // closed once the process has exited and been reaped
	log   *os.File
	err   error // the exit status, set before done is closed
}

// startChild runs bin with args and env added to the environment; its
// output is logged to logDir/name.log.
func startChild(name, logDir string, env []string, bin string, args ...string) (*child, error) {
	logf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = childproc.Attr(false)
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, lines: make(chan string, 256), done: make(chan struct{}), log: logf}
	// The goroutine ends when the process has exited: stop() makes sure of it.
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintf(logf, "stdout: %s\n", sc.Text())
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// proc is c itself, for the daemons that embed it.
func (c *child) proc() *child { return c }

// expect waits for a stdout line starting with prefix and returns the rest
// of it. Lines before it are returned in skipped.
func (c *child) expect(ctx context.Context, prefix string, timeout time.Duration) (rest string, skipped []string, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-c.lines:
			if r, ok := strings.CutPrefix(l, prefix); ok {
				return r, skipped, nil
			}
			skipped = append(skipped, l)
		case <-c.done:
			return "", skipped, fmt.Errorf("%s exited before printing %q (%v): see %s", c.name, prefix, c.err, c.log.Name())
		case <-t.C:
			return "", skipped, fmt.Errorf("%s did not print %q within %s: see %s", c.name, prefix, timeout, c.log.Name())
		case <-ctx.Done():
			return "", skipped, ctx.Err()
		}
	}
}

// addrs reads "addr X" lines up to "ready".
func (c *child) addrs(ctx context.Context) ([]string, error) {
	_, lines, err := c.expect(ctx, "ready", 30*time.Second)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range lines {
		if a, ok := strings.CutPrefix(l, "addr "); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// stop asks the process to end (SIGTERM), kills it after 15 s, and waits.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// procStats is what /proc says about a process.
type procStats struct {
	User, Sys  time.Duration // CPU time in user and kernel mode
	RSS        int64         // resident set size in bytes
	ReadCalls  int64         // read-family system calls (syscr)
	WriteCalls int64         // write-family system calls (syscw)
}

func (p procStats) CPU() time.Duration { return p.User + p.Sys }

func (p procStats) sub(q procStats) procStats {
	return procStats{User: p.User - q.User, Sys: p.Sys - q.Sys, RSS: p.RSS - q.RSS,
		ReadCalls: p.ReadCalls - q.ReadCalls, WriteCalls: p.WriteCalls - q.WriteCalls}
}

func (p procStats) add(q procStats) procStats {
	return procStats{User: p.User + q.User, Sys: p.Sys + q.Sys, RSS: p.RSS + q.RSS,
		ReadCalls: p.ReadCalls + q.ReadCalls, WriteCalls: p.WriteCalls + q.WriteCalls}
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100
// on every Linux the harness runs on).
const clockTick = 10 * time.Millisecond

// readProc reads /proc/PID/{stat,status,io}.
func readProc(pid int) (procStats, error) {
	var st procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name is in parentheses and may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return st, errors.New("unexpected /proc/PID/stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return st, errors.New("unexpected /proc/PID/stat format")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14: utime
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.User, st.Sys = time.Duration(ut)*clockTick, time.Duration(stt)*clockTick

	if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err != nil {
		return st, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			st.RSS = kb << 10
		}
	}
	if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err != nil {
		return st, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			st.ReadCalls = n
		case "syscw":
			st.WriteCalls = n
		}
	}
	return st, nil
}

// readProcs sums readProc over pids.
func readProcs(pids []int) (procStats, error) {
	var sum procStats
	for _, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return sum, err
		}
		sum = sum.add(s)
	}
	return sum, nil
}

// children tracks every child of the run so that all are stopped at the end.
type children struct {
	mu   sync.Mutex // guards list
	list []*child
}

func (cs *children) add(c *child) {
	cs.mu.Lock()
	cs.list = append(cs.list, c)
	cs.mu.Unlock()
}

// stopAll stops every child still running, several at a time.
func (cs *children) stopAll() {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, c := range list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.stop()
		}()
	}
	wg.Wait()
}
