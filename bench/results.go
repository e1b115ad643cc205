package main

import (
	"math"
	"slices"
	"time"
)

// Paths compared. Every figure has samples for some of them.
const (
	pathP2PD     = "p2pd"      // a p2pd forward over TCP (TLS, yamux)
	pathP2PDQUIC = "p2pd-quic" // a p2pd forward over QUIC, net.core.rmem_max/wmem_max raised to quic-go's wish
	// pathQUICSmall is a p2pd forward over QUIC whose daemons get the UDP
	// buffers of an untuned machine (-quic-udp-max-without).
	pathQUICSmall = "p2pd-quic-nobuf"
	pathDirect    = "direct"    // plain loopback TCP to the service
	pathRef       = "reference" // the reference tunnel (TCP -> TLS 1.3 -> TCP)
	pathCompare   = "p2pd-b"    // a forward over TCP through the -compare variant
	pathPlain     = "plain"     // the reference tunnel without encryption: two plain relays
	pathKubo      = "kubo"      // kubo's `ipfs p2p forward` between two kubo daemons (-kubo)
)

// Results is everything one run measured; it is written as JSON.
type Results struct {
	Command  string    `json:"command"`
	Quick    bool      `json:"quick"`
	Started  time.Time `json:"started"`
	Elapsed  string    `json:"elapsed"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Figures  []*Figure `json:"figures"`
	Idle     []Idle    `json:"idle_connections"`
	// QUICBuffers says what the daemons of each QUIC path got for their
	// UDP sockets (first repetition).
	QUICBuffers []QUICBuffers `json:"quic_buffers,omitempty"`
	Errors      []string      `json:"errors,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
	Commit    string  `json:"commit"`
	LoadAvg   string  `json:"load_average_at_start"`
}

// Settings are the sizes and counts the run used.
type Settings struct {
	Reps          int    `json:"repetitions"`
	BulkBytes     int64  `json:"bulk_bytes"`
	ParallelConns int    `json:"parallel_connections"`
	WriteSize     int    `json:"client_write_size"`
	RoundTrips    int    `json:"round_trips_per_rep"`
	MessageSize   int    `json:"message_size"`
	Connects      int    `json:"connects_per_rep"`
	IdleCounts    []int  `json:"idle_counts"`
	Nodes         int    `json:"discovery_nodes"`
	Compare       string `json:"compare,omitempty"`
	// MaxProcs is the cores each daemon ran Go code on (0: Go's default).
	MaxProcs int `json:"daemon_max_procs,omitempty"`
	// Kubo is the kubo binary and version measured (-kubo), KuboMissing
	// why kubo was not measured.
	Kubo          string `json:"kubo,omitempty"`
	KuboMissing   string `json:"kubo_missing,omitempty"`
	DiscoveryReps int    `json:"discovery_reps"`
}

// QUICBuffers is what the two daemons of one QUIC path had when they
// started and what their UDP sockets got.
type QUICBuffers struct {
	Path string `json:"path"`
	// RmemMax and WmemMax are net.core.rmem_max and wmem_max when the
	// daemons started; MachineRmemMax and MachineWmemMax the machine's own.
	RmemMax        int64 `json:"rmem_max"`
	WmemMax        int64 `json:"wmem_max"`
	MachineRmemMax int64 `json:"machine_rmem_max"`
	MachineWmemMax int64 `json:"machine_wmem_max"`
	// NetAdmin is whether the daemons held CAP_NET_ADMIN (quic-go then
	// forces its buffer size past the limits).
	NetAdmin [2]bool `json:"cap_net_admin"`
	// Recv and Send are the daemons' UDP socket buffers as `ss -m` shows
	// them (skmem rb and tb, the kernel's accounting: twice the size
	// granted), forwarding and listening daemon; 0 where unknown.
	Recv [2]int64 `json:"skmem_rb"`
	Send [2]int64 `json:"skmem_tb"`
	// Warning is quic-go's warning about the buffers in the forwarding
	// daemon's log, if it gave one.
	Warning string `json:"quic_go_warning,omitempty"`
	// Note says what could not be done or checked.
	Note string `json:"note,omitempty"`
}

// Figure is one measured quantity: per path, one sample per repetition
// (repetition i of every path ran in the same round).
type Figure struct {
	Key          string               `json:"key"`
	Title        string               `json:"title"`
	Unit         string               `json:"unit"`
	HigherBetter bool                 `json:"higher_is_better"`
	Samples      map[string][]float64 `json:"samples"`
}

// Idle is the result of one idle-connections run.
type Idle struct {
	N           int     `json:"n"`
	Path        string  `json:"path,omitempty"` // "" (p2pd) or "kubo"
	Opened      int     `json:"opened"`
	Working     int     `json:"working_after_all_open"`
	Streams     int     `json:"streams_seen_by_daemon"`
	OpenSeconds float64 `json:"seconds_to_open"`
	KiBPerConnA float64 `json:"rss_kib_per_conn_forwarding_daemon"`
	KiBPerConnB float64 `json:"rss_kib_per_conn_listening_daemon"`
	// Per connection and daemon (forwarding, listening), from the daemons'
	// Go runtime metrics: heap in use, goroutine stacks, goroutines.
	HeapKiBPerConn    [2]float64 `json:"heap_inuse_kib_per_conn"`
	StackKiBPerConn   [2]float64 `json:"stack_inuse_kib_per_conn"`
	GoroutinesPerConn [2]float64 `json:"goroutines_per_conn"`
	RSSBeforeMiB      [2]float64 `json:"rss_mib_before"`
	RSSAfterMiB       [2]float64 `json:"rss_mib_after"`
	// AnswerWithinSeconds is how long a new connection's first echo was
	// waited for.
	AnswerWithinSeconds float64 `json:"answer_within_seconds,omitempty"`
	// Probes are what one more connection got with the others open, where
	// some failed to open (over QUIC: past the stream cap).
	Probes []Probe `json:"probes,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// Probe is what one more connection through a forward got.
type Probe struct {
	What    string  `json:"what"`
	Outcome string  `json:"outcome"`
	Seconds float64 `json:"seconds"` // from the dial to the outcome
}

// figure returns the figure with key, adding it if it is new.
func (r *Results) figure(key, title, unit string, higherBetter bool) *Figure {
	for _, f := range r.Figures {
		if f.Key == key {
			return f
		}
	}
	f := &Figure{Key: key, Title: title, Unit: unit, HigherBetter: higherBetter, Samples: map[string][]float64{}}
	r.Figures = append(r.Figures, f)
	return f
}

// find returns the figure with key, or nil.
func (r *Results) find(key string) *Figure {
	for _, f := range r.Figures {
		if f.Key == key {
			return f
		}
	}
	return nil
}

func (f *Figure) add(path string, v float64) {
	f.Samples[path] = append(f.Samples[path], v)
}

// summary is a median with its range.
type summary struct {
	Median, Min, Max float64
	N                int
}

func (s summary) ok() bool { return s.N > 0 }

func summarize(vs []float64) summary {
	vs = slices.DeleteFunc(slices.Clone(vs), func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) })
	if len(vs) == 0 {
		return summary{}
	}
	slices.Sort(vs)
	m := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		m = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return summary{Median: m, Min: vs[0], Max: vs[len(vs)-1], N: len(vs)}
}

// stat summarizes one path of the figure.
func (f *Figure) stat(path string) summary {
	if f == nil {
		return summary{}
	}
	return summarize(f.Samples[path])
}

// ratio summarizes path/base over the repetitions both have.
func (f *Figure) ratio(path, base string) summary {
	if f == nil {
		return summary{}
	}
	a, b := f.Samples[path], f.Samples[base]
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	return summarize(rs)
}
