package fastpath

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/p2pd/p2pd/streams"
	"github.com/p2pd/p2pd/streams/streamstest"
)

// TestPollerCannotStart makes the poller fail to start: epoll_create1 fails
// with EMFILE, the process having no free file descriptor when the
// engine's first pump asks for its poller. The engine logs an error and
// refuses that pump and every later one, and the registry logs it, counts
// it in its metric once and bridges that stream and every later one with
// its plain bridge, which carry data.
func TestPollerCannotStart(t *testing.T) {
	logs := captureErrorLogs(t)
	eng, err := New()
	if err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	tun := streamstest.NewTunnel(t, streamstest.Echo, streamstest.Config{
		OptsA: []streams.Option{streams.WithEngine(eng), streams.WithPrometheusRegisterer(metrics)},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := tun.A.NewStream(ctx, tun.B.ID(), streamstest.Proto)
	if err != nil {
		t.Fatal(err)
	}
	local, app := streamstest.TCPPair(t)
	withoutFreeFiles(t, func() { _, err = tun.RegA.Bridge(s, local, nil, nil) })
	if err != nil {
		t.Fatalf("Bridge while the poller cannot start: %v", err)
	}
	if eng.working() {
		t.Fatal("the engine works although its poller could not start")
	}
	if _, err := eng.NewPump(nil, nil, nil); !errors.Is(err, syscall.EMFILE) || !strings.Contains(err.Error(), "starting the poller") {
		t.Fatalf("NewPump on the failed engine: %v, want the poller's start failure (EMFILE)", err)
	}
	if got := failures(t, metrics); got != 1 {
		t.Fatalf("p2pd_streams_engine_failures_total = %v, want 1", got)
	}
	streamstest.PingConn(t, app, "through the plain bridge")
	for i := range 3 {
		streamstest.PingConn(t, tun.Dial(t), strings.Repeat("later", i+1))
	}
	if got := failures(t, metrics); got != 1 {
		t.Fatalf("p2pd_streams_engine_failures_total = %v after more streams, want still 1", got)
	}

	wantErrorLogged(t, logs, "p2pd/fastpath", "epoll_create1") // the engine, as it fails
	wantErrorLogged(t, logs, "p2pd/streams", "epoll_create1")  // the registry, as it falls back
}

// wantErrorLogged waits until logs holds an error of logger whose err field
// contains substr.
func wantErrorLogged(t *testing.T, logs func() []logEntry, logger, substr string) {
	t.Helper()
	streamstest.WaitFor(t, "an error logged by "+logger+" naming "+substr, func() bool {
		return slices.ContainsFunc(logs(), func(e logEntry) bool {
			return e.Logger == logger && e.Level == "error" && strings.Contains(e.Err, substr)
		})
	})
}

// withoutFreeFiles runs f with the process's open-file limit lowered to its
// lowest free descriptor number, so that nothing f does can open a file
// (EMFILE), and restores the limit after.
func withoutFreeFiles(t *testing.T, f func()) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// The kernel gives the lowest free number: this one, once closed again.
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = syscall.Close(fd)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(fd), Max: lim.Max}); err != nil {
		t.Fatalf("lowering the open-file limit to %d: %v", fd, err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("restoring the open-file limit: %v", err)
		}
	}()
	f()
}

// logEntry is one JSON log entry of go-log.
type logEntry struct {
	Level, Logger, Msg, Err string
}

// captureErrorLogs collects the error-level entries of every go-log logger
// until the test ends; the function it returns gives those so far.
func captureErrorLogs(t *testing.T) func() []logEntry {
	r := logging.NewPipeReader(logging.PipeLevel(logging.LevelError), logging.PipeFormat(logging.JSONOutput))
	var mu sync.Mutex
	var entries []logEntry
	done := make(chan struct{})
	go func() {
		defer close(done)
		dec := json.NewDecoder(r)
		for {
			var e logEntry
			if err := dec.Decode(&e); err != nil {
				return
			}
			mu.Lock()
			entries = append(entries, e)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = r.Close()
		<-done
	})
	return func() []logEntry {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(entries)
	}
}
