//go:build !race

package streamstest

// raceEnabled tells whether the race detector is on.
const raceEnabled = false
