package discovery

import (
	"errors"
	"testing"
)

func TestDialReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "no answer"},
		{errors.New("failed to dial: failed to dial 12D3KooWA: all dials failed\n  * [/ip4/127.0.0.1/tcp/1] dial tcp4 127.0.0.1:1: connect: connection refused"), "connection refused"},
		{errors.New("failed to dial: context deadline exceeded"), "context deadline exceeded"},
		{errors.New("no good addresses"), "no good addresses"},
	}
	for _, tt := range tests {
		if got := dialReason(tt.err); got != tt.want {
			t.Errorf("dialReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	s := &Service{cfg: defaultConfig()}
	want := "cannot reach any of the 3 bootstrap peers (connection refused); LAN peers are still found by mDNS; see README 'A private network' to run your own; retrying quietly"
	if got := s.unreachableText(3, errors.New("dial: connection refused")); got != want {
		t.Errorf("unreachableText:\n got %q\nwant %q", got, want)
	}
}
