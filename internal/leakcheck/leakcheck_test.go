package leakcheck

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The goroutines below stand in for leaked ones; they end with the test.

func fakeRelayFinder(stop <-chan struct{}) { <-stop }

func otherLeak(stop <-chan struct{}) { <-stop }

// TestHostLeakcheckExcusesOnlyTheAutorelayRace: the excused goroutines
// pass the check when they are all that is left, and never hide another
// leak beside them.
func TestHostLeakcheckExcusesOnlyTheAutorelayRace(t *testing.T) {
	base := []goleak.Option{goleak.IgnoreCurrent()}
	excused := []goleak.Option{goleak.IgnoreAnyFunction("github.com/p2pd/p2pd/internal/leakcheck.fakeRelayFinder")}
	stop := make(chan struct{})
	defer close(stop)

	if err := find(0, excused, base); err != nil {
		t.Fatalf("nothing left: %v", err)
	}
	go fakeRelayFinder(stop)
	if err := find(0, excused, base); err != nil {
		t.Fatalf("only the excused goroutine left: %v", err)
	}
	if err := find(0, nil, base); err == nil {
		t.Fatal("a leaked goroutine that is not excused passed")
	}
	go otherLeak(stop)
	err := find(0, excused, base)
	if err == nil || !strings.Contains(err.Error(), "otherLeak") {
		t.Fatalf("another leak beside the excused one: %v", err)
	}
}
