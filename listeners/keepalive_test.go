package listeners

import (
	"testing"
	"time"
)

func TestKeepAlive(t *testing.T) {
	tests := []struct {
		netw, addr string
		want       time.Duration
	}{
		{"tcp", "127.0.0.1:22", -1},
		{"tcp4", "127.8.9.1:22", -1},
		{"tcp6", "[::1]:22", -1},
		{"tcp", "[::ffff:127.0.0.1]:22", -1},
		{"tcp", "0.0.0.0:2222", 0},
		{"tcp", "192.168.1.5:22", 0},
		{"tcp", "[2001:db8::1]:22", 0},
		{"tcp", "localhost:22", 0}, // a name: not resolved here, so the default
		{"unix", "/run/app.sock", 0},
		{"tcp", "no-port", 0},
	}
	for _, tt := range tests {
		if got := keepAlive(tt.netw, tt.addr); got != tt.want {
			t.Errorf("keepAlive(%q, %q) = %v, want %v", tt.netw, tt.addr, got, tt.want)
		}
	}
}
