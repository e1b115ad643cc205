// Package version reports the version of p2pd that is running. It is the
// single place the version string lives, so the user agent, `p2pd version`
// and the control API agree.
package version

// Version is the release of this build. Release builds override it with
// -ldflags "-X github.com/p2pd/p2pd/version.Version=...".
var Version = "0.1.0-dev"

// UserAgent is the libp2p user agent p2pd announces through identify.
func UserAgent() string { return "p2pd/" + Version }
