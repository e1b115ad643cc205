package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// nocapEnv makes the test binary run execWithoutNetAdmin on the command
// in it instead of the tests (TestExecWithoutNetAdmin).
const nocapEnv = "P2PD_BENCH_TEST_NOCAP"

func TestMain(m *testing.M) {
	if v := os.Getenv(nocapEnv); v != "" {
		f := strings.Fields(v)
		fmt.Fprintln(os.Stderr, execWithoutNetAdmin(f[0], f[1:]))
		os.Exit(2)
	}
	goleak.VerifyTestMain(m)
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want summary
	}{
		{"none", nil, summary{}},
		{"one", []float64{3}, summary{3, 3, 3, 1}},
		{"odd", []float64{5, 1, 3}, summary{3, 1, 5, 3}},
		{"even", []float64{4, 1, 3, 2}, summary{2.5, 1, 4, 4}},
		{"skips NaN and Inf", []float64{math.NaN(), 2, math.Inf(1)}, summary{2, 2, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Fatalf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestRatioPairsRepetitions checks that ratios are taken within a
// repetition, not between medians.
func TestRatioPairsRepetitions(t *testing.T) {
	f := &Figure{Samples: map[string][]float64{
		pathP2PD:   {100, 300, 50},
		pathDirect: {1000, 1000, 100},
	}}
	got := f.ratio(pathP2PD, pathDirect)
	want := summary{Median: 0.3, Min: 0.1, Max: 0.5, N: 3}
	if math.Abs(got.Median-want.Median) > 1e-12 || got.Min != want.Min || got.Max != want.Max || got.N != want.N {
		t.Fatalf("ratio = %+v, want %+v", got, want)
	}
	if s := f.ratio(pathRef, pathDirect); s.ok() {
		t.Fatalf("ratio of a path without samples = %+v, want none", s)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"1GiB", 1 << 30, ""},
		{"64MiB", 64 << 20, ""},
		{"512KiB", 512 << 10, ""},
		{"1000", 1000, ""},
		{"0", 0, `-size: "0" is not a size like 1GiB or 64MiB`},
		{"1GB", 0, `-size: "1GB" is not a size like 1GiB or 64MiB`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("parseSize(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestSpliceFile checks that publishing replaces only the generated block
// of BENCHMARKS.md.
func TestSpliceFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := spliceFile(file, "first\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if want := "# p2pd benchmarks\n\n" + beginMarker + "\nfirst\n" + endMarker + "\n"; string(b) != want {
		t.Fatalf("new file:\n%s\nwant:\n%s", b, want)
	}
	edited := "# Title\n\nintro\n\n" + beginMarker + "\nfirst\n" + endMarker + "\n\n## Notes\nhand-written\n"
	if err := os.WriteFile(file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spliceFile(file, "second\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(file)
	if want := strings.Replace(edited, "first", "second", 1); string(b) != want {
		t.Fatalf("spliced file:\n%s\nwant:\n%s", b, want)
	}
}

// TestReportAndChart renders a report and a chart from a small result set:
// the table has the ratio, the targets are judged, and the SVG is
// well-formed XML.
func TestReportAndChart(t *testing.T) {
	res := &Results{Settings: Settings{Reps: 2, ParallelConns: 8, Nodes: 50, BulkBytes: 1 << 30, WriteSize: writeSize}}
	tput := res.figure("tput1", "throughput", "MiB/s", true)
	for _, v := range [][4]float64{{400, 1000, 700, 200}, {500, 1000, 900, 400}} {
		tput.add(pathP2PD, v[0])
		tput.add(pathDirect, v[1])
		tput.add(pathPlain, v[2])
		tput.add(pathKubo, v[3])
	}
	cpu := res.figure("cpu1", "cpu", "core-s/GiB", false)
	cpu.add(pathP2PD, 3)
	cpu.add(pathPlain, 1.5)
	cpu.add(pathRef, 2.5)
	cpu.add(pathKubo, 6)
	res.figure("cipher", "aes", "core-s/GiB", false).add(pathCipher, 0.5)
	start := res.figure("startup", "start", "ms", false)
	start.add(pathP2PD, 20)
	res.Idle = []Idle{{N: 10000, Opened: 10000, Working: 10000, KiBPerConnA: 9, KiBPerConnB: 11}}

	md := renderReport(res, "chart.svg", "results.json")
	wantInReport(t, md,
		"| Throughput, 1 connection | MiB/s | 450 (400–500) | 300 (200–400) | 1000 | – | 800 (700–900) | 1.62× (1.25–2.00) | 0.45× (0.40–0.50) | – | 0.80× (0.70–0.90) |",
		"| 1 connection ≥ 1.5× kubo | 1.62× (1.25–2.00) | yes | 2.88× (2.25–3.50), would meet it |",
		"| 1 connection ≥ 1.15× the reference tunnel | – | not measured | – |",
		"| CPU per GiB, both daemons, ≤ 0.85× the reference tunnel | 1.20× | no | 1.50 core-s/GiB; with AES-GCM (+ 0.50) at least 2.00, 0.80× the reference |",
		"| CPU per GiB, both daemons, ≤ 0.7× kubo | 0.50× | yes | 0.25×, would meet it |",
		"Encryption alone (AES-128-GCM, sealing and opening 16 KiB records as TLS 1.3 does, one core, measured in the harness between the transfers): 0.50 core-s per GiB.",
		"| daemon start to API ready ≤ 300 ms | 20.0 ms | yes |",
		"| 10000 concurrent connections through one forward, all working | 10000 of 10000 | yes |",
		"| ≤ 8 KiB of RSS per idle forwarded connection per daemon | 9.0 KiB (forwarding), 11.0 KiB (listening), at 10000 | no |",
		"| 64-byte round trip ≤ 0.6× kubo | – | not measured |",
	)

	svg := renderChart(res)
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("chart is not well-formed XML: %v", err)
			}
			break
		}
	}
	for _, item := range []string{">reference tunnel<", ">plain relay (no encryption)<", ">kubo p2p forward<"} {
		if n := strings.Count(svg, item); n != 1 {
			t.Errorf("the legend has %s %d times, want once", item, n)
		}
	}
	if !strings.Contains(svg, "0.45×") {
		t.Fatalf("chart lacks the 0.45× median of the 1-connection ratio")
	}
	if !strings.Contains(svg, ">kubo p2p forward, 1 conn.<") || !strings.Contains(svg, "0.30×") {
		t.Fatalf("chart lacks the kubo series (1 connection: 0.30× direct)")
	}

	// Without kubo samples the chart has no kubo rows and the report says why.
	res.Settings.KuboMissing = "kubo not measured: no -kubo PATH given"
	delete(tput.Samples, pathKubo)
	svg = renderChart(res)
	for _, kubo := range []string{">kubo p2p forward, 1 conn.<", ">kubo p2p forward<", "kubo's throughput", `class="target"/>`} {
		if strings.Contains(svg, kubo) {
			t.Errorf("chart without kubo samples has %q (a kubo row, legend entry or target)", kubo)
		}
	}
	for _, item := range []string{">p2pd over TCP<", ">reference tunnel<", ">min–max<"} {
		if !strings.Contains(svg, item) {
			t.Errorf("chart without kubo lacks the legend entry %s", item)
		}
	}
	if md := renderReport(res, "chart.svg", "results.json"); !strings.Contains(md, "kubo not measured: no -kubo PATH given.") {
		t.Fatalf("report does not say kubo was not measured:\n%s", md)
	}
}

// wantInReport fails t for every one of wants that the report md lacks.
func wantInReport(t *testing.T, md string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
