package streams

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
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
	// waiting to the registry poller. Waking a parked bridge takes a pass
	// through the poller: 64-byte round trips through a forward took 0.92x
	// as long with this delay as when parking at once (bench/, -compare), as
	// a connection that keeps talking never parks. A longer delay keeps more
	// goroutines alive through a burst of new connections: with 1 s, 10,000
	// idle connections cost 2 KiB more RSS each; with 20 ms no measurable
	// amount.
	DefaultParkDelay = 20 * time.Millisecond

	// DefaultProtectTag is the connection-manager tag under which a peer is
	// protected while it has open bridged streams.
	DefaultProtectTag = "p2pd-streams"

	maxParkDelay  = time.Minute
	minBufferSize = 4 << 10
	maxBufferSize = 16 << 20
)

// config holds the settings of a Registry. Its zero value is not used; see
// defaultConfig.
type config struct {
	cm         connmgr.ConnManager
	protectTag string
	onOpen     func(Info)
	onClose    func(Info, error)
	bufSize    int
	// localMode says how local connections are read; other than the
	// default only for tests and benchmarks.
	localMode localMode
	parkDelay time.Duration
}

// localMode is how a bridge reads its local connection.
type localMode int

const (
	// localPoll reads TCP and Unix connections through their file
	// descriptor and, on Linux, waits for idle ones in the registry poller.
	localPoll localMode = iota
	// localRaw reads them through their file descriptor, each with a
	// goroutine waiting in the Go poller.
	localRaw
	// localPlain reads every connection with net.Conn.Read.
	localPlain
)

func defaultConfig() config {
	return config{
		protectTag: DefaultProtectTag,
		bufSize:    DefaultBufferSize,
		parkDelay:  DefaultParkDelay,
	}
}

// Option configures a Registry. Options check their own arguments and make
// NewRegistry panic (or New fail) when given something invalid.
type Option func(*config) error

// WithConnManager makes the registry protect a peer in cm while it has at
// least one open bridged stream, so that connection trimming does not cut a
// live tunnel. libp2p's Protect is not counted, so the registry counts streams
// per peer itself and unprotects the peer when its last stream ends.
func WithConnManager(cm connmgr.ConnManager) Option {
	return func(c *config) error {
		if cm == nil {
			return errors.New("connection manager is nil")
		}
		c.cm = cm
		return nil
	}
}

// WithProtectTag sets the tag used with WithConnManager. The default is
// DefaultProtectTag.
func WithProtectTag(tag string) Option {
	return func(c *config) error {
		if tag == "" {
			return errors.New("protect tag is empty")
		}
		c.protectTag = tag
		return nil
	}
}

// WithOnOpen registers a function called once for every stream the registry
// accepts, before any byte is copied. It runs in the goroutine that called
// Bridge and must not block for long.
func WithOnOpen(f func(Info)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("open hook is nil")
		}
		c.onOpen = f
		return nil
	}
}

// WithOnClose registers a function called once for every stream when it has
// ended, been removed from the registry and its peer unprotected. info holds
// the final byte counts. err is nil when both directions ended with a clean
// end of stream, and otherwise says why the stream was reset (ErrResetRequested,
// ErrClosed, or the I/O error). It runs in a bridge goroutine and must not call
// Registry.Close.
func WithOnClose(f func(info Info, err error)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("close hook is nil")
		}
		c.onClose = f
		return nil
	}
}

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
// its bridge parks it in the registry poller (Linux; elsewhere every
// direction keeps its goroutine): 0 parks at once, saving the most memory
// on connections that talk rarely; longer keeps busy connections' latency
// lowest. It must be between 0 and a minute. The default is
// DefaultParkDelay.
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
