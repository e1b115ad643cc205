package daemon

import (
	"fmt"
	"time"
)

// UDPIdleTimeout sets how long a UDP flow may see no datagram either way
// before it is closed (udpflow.DefaultIdleTimeout otherwise).
func UDPIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("UDP idle timeout must be positive, got %s", d)
		}
		c.udpIdleTimeout = d
		return nil
	}
}
