package udpflow

import (
	"errors"
	"time"
)

const (
	// MaxDatagram is the largest datagram a flow carries: the largest UDP
	// payload over IPv4 (65,535 bytes less the IP and UDP headers). Larger
	// ones (possible over IPv6) are dropped, counted and logged once per
	// flow.
	MaxDatagram = 65507

	// DefaultIdleTimeout is how long a flow may see no datagram either way
	// before it is closed.
	DefaultIdleTimeout = 2 * time.Minute

	// DefaultQueueDatagrams and DefaultQueueBytes bound the datagrams a flow
	// holds while its stream cannot take them (a peer slower than the
	// sender, or a stream still being opened); beyond either bound the
	// oldest are dropped, as a UDP socket's own buffer would drop them.
	DefaultQueueDatagrams = 1024
	DefaultQueueBytes     = 1 << 20

	// DefaultSocketBuffer is the receive and send buffer asked for each UDP
	// socket (see SetBuffers: the system's cap, net.core.rmem_max and
	// wmem_max, applies unless the process may pass it): a burst of large
	// datagrams must fit while the reading goroutine waits for a CPU.
	DefaultSocketBuffer = 4 << 20
)

// Option configures a Listener or a dialled Flow.
type Option func(*config) error

type config struct {
	idleTimeout    time.Duration
	queueDatagrams int
	queueBytes     int
	socketBuffer   int
	onError        func(error)
}

func defaultConfig() config {
	return config{
		idleTimeout:    DefaultIdleTimeout,
		queueDatagrams: DefaultQueueDatagrams,
		queueBytes:     DefaultQueueBytes,
		socketBuffer:   DefaultSocketBuffer,
	}
}

func newConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

// WithIdleTimeout sets how long a flow may be silent both ways before it is
// closed (DefaultIdleTimeout otherwise). It must be positive.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("UDP idle timeout must be positive")
		}
		c.idleTimeout = d
		return nil
	}
}

// WithQueue bounds each flow's queue of datagrams waiting for the stream to
// datagrams and bytes (DefaultQueueDatagrams and DefaultQueueBytes
// otherwise). Both must be positive; bytes must hold at least one datagram
// of MaxDatagram bytes.
func WithQueue(datagrams, bytes int) Option {
	return func(c *config) error {
		if datagrams <= 0 {
			return errors.New("UDP queue length must be positive")
		}
		if bytes < MaxDatagram {
			return errors.New("UDP queue must hold at least one datagram of 65507 bytes")
		}
		c.queueDatagrams, c.queueBytes = datagrams, bytes
		return nil
	}
}

// WithSocketBuffer sets the buffer size asked for each UDP socket
// (DefaultSocketBuffer otherwise); 0 leaves the system default.
func WithSocketBuffer(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return errors.New("UDP socket buffer size must not be negative")
		}
		c.socketBuffer = n
		return nil
	}
}

// WithErrorHook sets a function called with the first error of each kind a
// flow meets on its local side that costs datagrams (the local service
// refuses them, a datagram too large): the listener registry keeps it as the
// entry's last error. It is called from the flow's goroutines and must not
// block.
func WithErrorHook(f func(error)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("UDP error hook is nil")
		}
		c.onError = f
		return nil
	}
}
