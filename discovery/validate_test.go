package discovery

import "testing"

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"mode ok", ValidateMode("server"), ""},
		{"mode off", ValidateMode("off"), ""},
		{"mode bad", ValidateMode("sometimes"), "want auto, server, client or off"},
		{"prefix ok", ValidatePrefix("/lab"), ""},
		{"prefix no slash", ValidatePrefix("lab"), `a DHT protocol prefix must start with "/"`},
		{"prefix trailing slash", ValidatePrefix("/lab/"), `a DHT protocol prefix must not end with "/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if tt.err != nil {
				got = tt.err.Error()
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
