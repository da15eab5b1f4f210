package main

import (
	"fmt"
	"os"
	"sync"
)

// failer is the test.Failer that Istio's fake discovery server wants, for a long-running
// process: a fatal error ends the process, cleanups run (last first) at shutdown.
type failer struct {
	mu       sync.Mutex
	cleanups []func()
}

func (f *failer) Fail()                             { f.FailNow() }
func (f *failer) FailNow()                          { fail("fatal error in the discovery server") }
func (f *failer) Fatal(args ...any)                 { fail("%s", fmt.Sprint(args...)) }
func (f *failer) Fatalf(format string, args ...any) { fail(format, args...) }
func (f *failer) Log(args ...any)                   { fmt.Fprintln(os.Stderr, args...) }
func (f *failer) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (f *failer) Helper()                           {}
func (f *failer) Skip(args ...any)                  { f.Fatal(args...) }

func (f *failer) TempDir() string {
	dir, err := os.MkdirTemp("", "istiod-")
	if err != nil {
		fail("temp dir: %v", err)
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (f *failer) Cleanup(cleanup func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, cleanup)
}

func (f *failer) cleanup() {
	f.mu.Lock()
	cleanups := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}
