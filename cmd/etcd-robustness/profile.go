package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// Environment variables for profiling `check` and `run` (for people
// working on the checker's speed and memory, so not flags). Each names a
// file to write: the CPU profile of loading and checking the record, and
// the heap profile taken right after the check, while the record is still
// held (`go tool pprof -sample_index=alloc_space` shows what was allocated
// over the whole check, inuse_space what was still held). `run` writes a
// second heap profile, the path with ".before-check" added, when the
// traffic has ended and the record is all in memory, before the check.
const (
	cpuProfileEnv = "ETCD_ROBUSTNESS_CPUPROFILE"
	memProfileEnv = "ETCD_ROBUSTNESS_MEMPROFILE"
)

// startCPUProfile starts the CPU profile asked for by cpuProfileEnv, if
// any, and returns what stops it.
func startCPUProfile(stderr io.Writer) func() {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "etcd-robustness: %s: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "etcd-robustness: %s: %v\n", cpuProfileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// writeHeapProfile writes the heap profile asked for by memProfileEnv, if
// any, to its path with suffix added. A failure is only reported: it
// changes no verdict.
func writeHeapProfile(stderr io.Writer, suffix string) {
	path := os.Getenv(memProfileEnv)
	if path == "" {
		return
	}
	f, err := os.Create(path + suffix)
	if err == nil {
		runtime.GC() // the in-use figures are of live objects only
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "etcd-robustness: %s: %v\n", memProfileEnv, err)
	}
}
