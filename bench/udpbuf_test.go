package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseSS reads the buffers and drops of one process's UDP sockets out
// of `ss -uamnpH` output, skmem on the continuation line or the same one.
func TestParseSS(t *testing.T) {
	out := []byte("UNCONN 0      0      127.0.0.1:42467 0.0.0.0:* users:((\"p2pd\",pid=3850,fd=3))\n" +
		"\t skmem:(r0,rb425984,t0,tb425984,f0,w0,o0,bl0,d7)\n" +
		"UNCONN 0      0      127.0.0.1:5353 0.0.0.0:* users:((\"other\",pid=38501,fd=7))\n" +
		"\t skmem:(r0,rb14680064,t0,tb14680064,f0,w0,o0,bl0,d100)\n" +
		"UNCONN 0      0      [::1]:40000 [::]:* users:((\"p2pd\",pid=3850,fd=9)) skmem:(r0,rb212992,t0,tb851968,f0,w0,o0,bl0,d3)\n")
	st, ok := parseSS(out, 3850)
	if want := (udpSockets{rb: 425984, tb: 851968, drops: 10}); !ok || st != want {
		t.Fatalf("parseSS(pid 3850) = %+v, %v; want the largest buffers and the sum of drops of its two sockets: %+v", st, ok, want)
	}
	if _, ok := parseSS(out, 385); ok {
		t.Fatal("parseSS found sockets of pid 385, which has none (pid=3850 is another process)")
	}
}

func TestQUICBufferWarning(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "d.log")
	line := "failed to sufficiently increase receive buffer size (was: 208 kiB, wanted: 7168 kiB, got: 416 kiB). See https://github.com/quic-go/quic-go/wiki/UDP-Buffer-Sizes for details."
	if err := os.WriteFile(log, []byte("stdout: api: /ip4/127.0.0.1/tcp/1\n2026/12/04 19:53:19 "+line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := quicBufferWarning(log); got != line {
		t.Fatalf("quicBufferWarning = %q, want %q", got, line)
	}
	if got := quicBufferWarning(filepath.Join(dir, "none.log")); got != "" {
		t.Fatalf("quicBufferWarning of a missing log = %q, want none", got)
	}
}

// TestReportQUICBuffers checks the buffers table and the not-raised ÷
// raised comparison, and the note of a run that could not raise them.
func TestReportQUICBuffers(t *testing.T) {
	res := &Results{Settings: Settings{Reps: 2, ParallelConns: 8}}
	tput := res.figure("tput1", "throughput, 1 connection", "MiB/s", true)
	for _, v := range [][3]float64{{100, 80, 1000}, {120, 60, 1000}} {
		tput.add(pathP2PDQUIC, v[0])
		tput.add(pathQUICSmall, v[1])
		tput.add(pathDirect, v[2])
	}
	res.QUICBuffers = []QUICBuffers{
		{Path: pathQUICSmall, RmemMax: 212992, WmemMax: 212992, MachineRmemMax: 4 << 20, MachineWmemMax: 4 << 20,
			Recv: [2]int64{425984, 425984}, Send: [2]int64{425984, 425984}, Warning: "failed to sufficiently increase receive buffer size"},
		{Path: pathP2PDQUIC, RmemMax: 7 << 20, WmemMax: 7 << 20, MachineRmemMax: 4 << 20, MachineWmemMax: 4 << 20,
			Recv: [2]int64{14 << 20, 14 << 20}, Send: [2]int64{14 << 20, 14 << 20}},
	}
	md := renderReport(res, "chart.svg", "results.json")
	wantInReport(t, md,
		"this machine's net.core.rmem_max / wmem_max are 4096 KiB / 4096 KiB",
		"| not raised | 208 KiB / 208 KiB | no; no | 416 KiB; 416 KiB | 416 KiB; 416 KiB | failed to sufficiently increase receive buffer size |",
		"| raised (quic-go's wish) | 7168 KiB / 7168 KiB | no; no | 14336 KiB; 14336 KiB | 14336 KiB; 14336 KiB | none |",
		"| throughput, 1 connection | MiB/s | 110 (100–120) | 70.0 (60.0–80.0) | 0.65× (0.50–0.80) |",
		"| Throughput, 1 connection, over QUIC, UDP buffers not raised | MiB/s | 70.0 (60.0–80.0) |",
	)
	res.QUICBuffers = res.QUICBuffers[:1]
	delete(tput.Samples, pathP2PDQUIC)
	md = renderReport(res, "chart.svg", "results.json")
	if !strings.Contains(md, "Only the figures without raised UDP buffers were measured") {
		t.Errorf("report of a run without raised buffers does not say so:\n%s", md)
	}
	if strings.Contains(md, "not raised ÷ raised") {
		t.Errorf("report compares with a raised path that was not measured:\n%s", md)
	}
}

// TestReportIdleOverQUIC checks the idle-connections row of the forward
// over QUIC and the lines of its probes.
func TestReportIdleOverQUIC(t *testing.T) {
	res := &Results{Settings: Settings{Reps: 1, ParallelConns: 8}}
	res.Idle = []Idle{
		{N: 1000, Opened: 1000, Working: 1000, Streams: 1000},
		{N: 1000, Path: pathP2PDQUIC, AnswerWithinSeconds: 5, Opened: 256, Working: 256, Streams: 256, Error: "744 of 1000 connections failed to open",
			Probes: []Probe{{What: "one more connection, the 256 others held open", Outcome: "reset by the forward", Seconds: 30.02}}},
	}
	md := renderReport(res, "chart.svg", "results.json")
	wantInReport(t, md,
		"| p2pd over QUIC | 1000 | 256 | 256 | 256 |",
		"p2pd over QUIC, 1000 connections: 744 of 1000 connections failed to open",
		"p2pd over QUIC, 1000 connections, one more connection, the 256 others held open: reset by the forward after 30.0 s.",
		"which admits 256 streams at once (go-libp2p's quicreuse sets quic-go's MaxIncomingStreams); a connection counts as opened when its first byte comes back within 5s.",
		"| 1000 concurrent connections through one forward, all working | 1000 of 1000 | yes |",
	)
}

// TestExecWithoutNetAdmin runs a program the way the harness starts the
// QUIC paths' daemons and checks that it lacks CAP_NET_ADMIN, which the
// test process (root) has.
func TestExecWithoutNetAdmin(t *testing.T) {
	self, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if has, err := netAdminIn(self); err != nil || !has {
		t.Skipf("this process has no CAP_NET_ADMIN to drop (not root?): %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nocapEnv+"=cat /proc/self/status")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running cat without CAP_NET_ADMIN: %v", err)
	}
	has, err := netAdminIn(out)
	if err != nil {
		t.Fatalf("reading the child's status: %v\n%s", err, out)
	}
	if has {
		t.Fatalf("the child has CAP_NET_ADMIN in its effective set:\n%s", out)
	}
}

func TestNetAdminIn(t *testing.T) {
	for _, tt := range []struct {
		status string
		want   bool
		err    bool
	}{
		{"Name:\tp2pd\nCapEff:\t000001fffeffffff\n", true, false},
		{"CapEff:\t000001fffeffefff\n", false, false},
		{"CapEff:\t0000000000000000\n", false, false},
		{"Name:\tp2pd\n", false, true},
		{"CapEff:\tzz\n", false, true},
	} {
		got, err := netAdminIn([]byte(tt.status))
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("netAdminIn(%q) = %v, %v; want %v, error %v", tt.status, got, err, tt.want, tt.err)
		}
	}
}

// TestUDPStateLock checks that a second holder of the limits' state file
// waits for the first (here: gives up when its context ends) and gets the
// lock once the first closes it, and that saved limits are read back.
func TestUDPStateLock(t *testing.T) {
	old := udpStateFile
	udpStateFile = filepath.Join(t.TempDir(), "udp-limits")
	defer func() { udpStateFile = old }()

	first, err := lockUDPState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := readUDPState(first); ok {
		t.Fatal("an empty state file reads as saved limits")
	}
	if _, err := first.WriteAt([]byte("4194304 212992\n"), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f, err := lockUDPState(ctx); !errors.Is(err, context.Canceled) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("lockUDPState while another holds the lock = %v, want it to wait until its context ends", err)
	}
	first.Close()
	second, err := lockUDPState(context.Background())
	if err != nil {
		t.Fatalf("lockUDPState after the first holder closed: %v", err)
	}
	defer second.Close()
	if l, ok := readUDPState(second); !ok || l != (udpLimits{4194304, 212992}) {
		t.Fatalf("readUDPState = %+v, %v; want the saved 4194304 / 212992", l, ok)
	}
}

// TestUDPSysctlRestores runs the harness's changes of the limits on files
// standing in for the sysctls: they are restored at the end, and a run
// that was killed before restoring them is undone by the next.
func TestUDPSysctlRestores(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the harness changes the limits only as root")
	}
	dir := t.TempDir()
	saved := [3]string{rmemMaxFile, wmemMaxFile, udpStateFile}
	rmemMaxFile, wmemMaxFile, udpStateFile = filepath.Join(dir, "rmem_max"), filepath.Join(dir, "wmem_max"), filepath.Join(dir, "state")
	defer func() { rmemMaxFile, wmemMaxFile, udpStateFile = saved[0], saved[1], saved[2] }()
	machine := udpLimits{4194304, 4194304}
	if err := writeUDPLimits(machine); err != nil {
		t.Fatal(err)
	}
	limits := func() udpLimits {
		t.Helper()
		l, err := readUDPLimits()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	u, err := newUDPSysctl(context.Background())
	if err != nil || !u.canSet {
		t.Fatalf("newUDPSysctl = %+v, %v; want limits it can set", u, err)
	}
	if l, err := u.set(quicWantBuffer); err != nil || l != (udpLimits{quicWantBuffer, quicWantBuffer}) {
		t.Fatalf("set(%d) = %+v, %v", quicWantBuffer, l, err)
	}
	u.restore()
	if l := limits(); l != machine {
		t.Fatalf("after restore the limits are %+v, want the machine's %+v", l, machine)
	}

	// A run killed after changing them: the next run restores them.
	killed, err := newUDPSysctl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := killed.set(linuxDefaultUDPMax); err != nil {
		t.Fatal(err)
	}
	killed.state.Close() // the process died: its lock goes, the state file stays
	next, err := newUDPSysctl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer next.restore()
	if l := limits(); l != machine || next.orig != machine {
		t.Fatalf("after a killed run the next one found %+v and has %+v as the machine's; want %+v", l, next.orig, machine)
	}
}
