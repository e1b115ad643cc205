package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeRequestBody feeds request bodies to Decode for every request
// type of the API: it never panics, every refusal has a message, and what
// it accepts is valid UTF-8 holding exactly one JSON value.
func FuzzDecodeRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"address":"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"}`,
		`{"rendezvous":"team","timeout":"10s"}`,
		`{"rendezvous":"team","timeout":1000000000}`,
		`{"protocol":"/x/ssh","target_address":"/ip4/127.0.0.1/tcp/22","allow_peers":["12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"],"report_peer_id":true}`,
		`{"protocol":"/x/ssh","listen_address":"/ip4/127.0.0.1/tcp/0","target_address":"/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF","foreground":true}`,
		`{"all":true}`,
		`{"id":3}`,
		`{"protocol":"/x/a"}{"all":true}`,
		"{\"protocol\":\"/x/\xff\"}",
		`{"timeout":"-1h"}`,
		`{"all":"yes"}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return new(ConnectRequest) },
		func() any { return new(FindRequest) },
		func() any { return new(ListenRequest) },
		func() any { return new(ForwardRequest) },
		func() any { return new(CloseRequest) },
		func() any { return new(StreamCloseRequest) },
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, newV := range targets {
			if err := Decode(b, newV()); err != nil {
				if err.Error() == "" {
					t.Fatalf("refusal of %q without a message", b)
				}
				continue
			}
			if !utf8.Valid(b) {
				t.Fatalf("accepted invalid UTF-8: %q", b)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			var v any
			if dec.Decode(&v) != nil || dec.Decode(&v) == nil {
				t.Fatalf("accepted something that is not exactly one JSON value: %q", b)
			}
		}
	})
}
