// Package version reports the version of p2pd that is running. It is the
// single place the version string lives, so the user agent, `p2pd version`
// and the control API agree.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is the release of this build. Release builds override it with
// -ldflags "-X github.com/p2pd/p2pd/version.Version=...".
var Version = "0.1.0-dev"

// Commit is the source revision of this build. Empty: the revision the Go
// toolchain recorded in the build info (a build inside a git checkout),
// if any. Builds without the checkout (a container build) set it with
// -ldflags "-X github.com/p2pd/p2pd/version.Commit=...".
var Commit = ""

// Dirty is "true" when a build stamped with Commit was made from a checkout
// with uncommitted changes (-X github.com/p2pd/p2pd/version.Dirty=true).
var Dirty = ""

// libp2pModule is the module whose version Build reports.
const libp2pModule = "github.com/libp2p/go-libp2p"

// UserAgent is the libp2p user agent p2pd announces through identify.
func UserAgent() string { return "p2pd/" + Version }

// Info describes this build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a checkout with uncommitted changes
	GoVersion string `json:"go,omitempty"`
	Libp2p    string `json:"go_libp2p,omitempty"` // the go-libp2p module version linked in
}

var (
	buildOnce sync.Once
	buildInfo Info
)

// Build returns what the binary knows about its own build.
func Build() Info {
	buildOnce.Do(func() { buildInfo = readBuild(debug.ReadBuildInfo) })
	return buildInfo
}

func readBuild(read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: Version, Commit: Commit, Modified: Dirty == "true"}
	bi, ok := read()
	if !ok {
		return in
	}
	in.GoVersion = bi.GoVersion
	for _, d := range bi.Deps {
		if d.Path == libp2pModule {
			in.Libp2p = d.Version
			if d.Replace != nil {
				in.Libp2p = d.Replace.Version
			}
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if in.Commit == "" {
				in.Commit = s.Value
			}
		case "vcs.modified":
			if Commit == "" {
				in.Modified = s.Value == "true"
			}
		}
	}
	return in
}

// ShortCommit is the commit cut to 12 characters, as git shows it.
func (in Info) ShortCommit() string {
	if len(in.Commit) > 12 {
		return in.Commit[:12]
	}
	return in.Commit
}

// String is the one-line form `p2pd --version` prints after "p2pd ".
func (in Info) String() string {
	s := in.Version
	if in.Commit != "" {
		s += " (commit " + in.ShortCommit()
		if in.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s
}
