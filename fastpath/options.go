package fastpath

import (
	"fmt"
	"time"
)

const (
	// DefaultBufferSize is the size of the pooled copy buffers. Only a
	// direction that is moving data holds one. Chosen with BenchmarkBridgeTCP
	// (2 vCPU, loopback): CPU per GiB bridged is about 1.0 s with 32 KiB,
	// 0.8 s with 256 KiB and 0.73 s with 1 MiB; 256 KiB takes most of the
	// gain at a quarter of the memory of 1 MiB per active direction.
	DefaultBufferSize = 256 << 10

	// DefaultParkDelay is how long a local connection stays silent before
	// its bridge gives back the goroutine that waits for it and leaves the
	// waiting to the poller. Waking a parked bridge takes a pass through
	// the poller: 64-byte round trips through a forward took 0.92x as long
	// with this delay as when parking at once (bench/, -compare), as a
	// connection that keeps talking never parks. A longer delay keeps more
	// goroutines alive through a burst of new connections: with 1 s,
	// 10,000 idle connections cost 2 KiB more RSS each; with 20 ms no
	// measurable amount.
	DefaultParkDelay = 20 * time.Millisecond

	maxParkDelay  = time.Minute
	minBufferSize = 4 << 10
	maxBufferSize = 16 << 20
)

// config holds the settings of an Engine.
type config struct {
	bufSize int
	// localMode says how local connections are read; other than the
	// default only for tests and benchmarks.
	localMode localMode
	parkDelay time.Duration
}

// localMode is how a bridge reads its local connection.
type localMode int

const (
	// localPoll reads TCP and Unix connections through their file
	// descriptor and, on Linux, waits for idle ones in the poller.
	localPoll localMode = iota
	// localRaw reads them through their file descriptor, each with a
	// goroutine waiting in the Go poller.
	localRaw
	// localPlain reads every connection with net.Conn.Read.
	localPlain
)

func defaultConfig() config {
	return config{bufSize: DefaultBufferSize, parkDelay: DefaultParkDelay}
}

// Option configures an Engine.
type Option func(*config) error

// WithBufferSize sets the size in bytes of the pooled buffers used to copy
// bulk data, between 4 KiB and 16 MiB. An idle direction holds no such
// buffer. The default is DefaultBufferSize.
func WithBufferSize(n int) Option {
	return func(c *config) error {
		if n < minBufferSize || n > maxBufferSize {
			return fmt.Errorf("buffer size %d out of range [%d, %d]", n, minBufferSize, maxBufferSize)
		}
		c.bufSize = n
		return nil
	}
}

// WithParkDelay sets how long a local connection must stay silent before
// its bridge parks it in the poller (Linux; elsewhere every direction keeps
// its goroutine): 0 parks at once, saving the most memory on connections
// that talk rarely; longer keeps busy connections' latency lowest. It must
// be between 0 and a minute. The default is DefaultParkDelay.
func WithParkDelay(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > maxParkDelay {
			return fmt.Errorf("park delay %s out of range [0s, %s]", d, maxParkDelay)
		}
		c.parkDelay = d
		return nil
	}
}

// withLocalMode picks how local connections are read (tests, benchmarks).
func withLocalMode(m localMode) Option {
	return func(c *config) error {
		c.localMode = m
		return nil
	}
}
