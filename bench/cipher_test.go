package main

import (
	"math"
	"testing"
)

// TestCipherCost checks that the cipher figure measures something: a
// positive, finite CPU time per GiB.
func TestCipherCost(t *testing.T) {
	c, err := cipherCost(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if c <= 0 || math.IsInf(c, 0) || math.IsNaN(c) {
		t.Fatalf("cipherCost = %v core-s/GiB, want a positive figure", c)
	}
	t.Logf("AES-128-GCM seal+open: %.2f core-s/GiB", c)
}
