package api

import (
	"encoding/json"
	"testing"
)

// FuzzDuration: Duration accepts what it can represent and round-trips it
// (a string like "10s" or a number of nanoseconds); it never panics.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"10s"`, `"1h2m3.5s"`, `1000000000`, `"-1s"`, `"10"`, `1e99`, `"9999999999h"`, `null`, `true`, `"\u00b5s"`, `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Duration
		if err := json.Unmarshal(b, &d); err != nil {
			return
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("%q decoded to %d, which does not encode: %v", b, d, err)
		}
		var back Duration
		if err := json.Unmarshal(out, &back); err != nil || back != d {
			t.Fatalf("%q -> %d -> %s -> %d (%v)", b, d, out, back, err)
		}
	})
}
