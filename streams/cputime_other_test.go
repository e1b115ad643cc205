//go:build !unix

package streams

import "time"

// cpuTime is not measured on this platform.
func cpuTime() time.Duration { return 0 }
