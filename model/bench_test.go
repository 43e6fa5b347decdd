package model

import (
	"fmt"
	"testing"
)

func stateWith(n int) State {
	s := InitialState()
	for i := range n {
		s, _, _ = s.Apply(PutRequest(fmt.Sprintf("key-%06d", i), "v"))
	}
	return s
}

var sizes = []int{10, 1000, 10000}

// BenchmarkApply is one put on a state of n keys.
func BenchmarkApply(b *testing.B) {
	for _, n := range sizes {
		s := stateWith(n)
		req := PutRequest("key-000005", "w")
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				s.Apply(req)
			}
		})
	}
}

// BenchmarkHash is a state's hash after a put.
func BenchmarkHash(b *testing.B) {
	for _, n := range sizes {
		s := stateWith(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				s.Hash()
			}
		})
	}
}

// BenchmarkEqual compares states as porcupine does: two states that
// differ (the hash answers), and a state with itself (shared structure).
func BenchmarkEqual(b *testing.B) {
	for _, n := range sizes {
		s := stateWith(n)
		x, _, _ := s.Apply(PutRequest("key-000005", "x"))
		y, _, _ := s.Apply(PutRequest("key-000005", "y"))
		b.Run(fmt.Sprintf("different/%d", n), func(b *testing.B) {
			for b.Loop() {
				x.Equal(y)
			}
		})
		b.Run(fmt.Sprintf("shared/%d", n), func(b *testing.B) {
			for b.Loop() {
				x.Equal(x)
			}
		})
		z, _, _ := s.Apply(PutRequest("key-000005", "x"))
		b.Run(fmt.Sprintf("equal-built-apart/%d", n), func(b *testing.B) {
			for b.Loop() {
				x.Equal(z)
			}
		})
	}
}
