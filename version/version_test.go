package version

import (
	"runtime/debug"
	"testing"
)

func TestReadBuild(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Deps: []*debug.Module{
			{Path: "github.com/multiformats/go-multiaddr", Version: "v0.16.1"},
			{Path: libp2pModule, Version: "v0.51.0"},
		},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := readBuild(func() (*debug.BuildInfo, bool) { return bi, true })
	want := Info{Version: Version, Commit: "0123456789abcdef0123", Modified: true, GoVersion: "go1.26.8", Libp2p: "v0.51.0"}
	if got != want {
		t.Fatalf("readBuild = %+v, want %+v", got, want)
	}
	if s := got.String(); s != Version+" (commit 0123456789ab, modified)" {
		t.Fatalf("String() = %q", s)
	}

	old := Commit
	Commit = "stamped"
	defer func() { Commit = old }()
	if got := readBuild(func() (*debug.BuildInfo, bool) { return bi, true }); got.Commit != "stamped" {
		t.Fatalf("a stamped commit lost to the build info: %q", got.Commit)
	}
	if got := readBuild(func() (*debug.BuildInfo, bool) { return nil, false }); got.String() != Version+" (commit stamped)" {
		t.Fatalf("without build info: %q", got.String())
	}
}

func TestBuildReadsTheBinary(t *testing.T) {
	if in := Build(); in.GoVersion == "" {
		t.Fatalf("no Go version in the build info: %+v", in)
	}
}
