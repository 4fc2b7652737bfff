// Package profile writes a process's CPU and allocation profiles (pprof format) for `go tool
// pprof`: off unless asked for, by flag or by TRIALCAT_PPROF naming a folder.
package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// EnvDir names the folder every coordinator and worker process writes its profiles to when set
// (the coordinator passes it to its workers).
const EnvDir = "TRIALCAT_PPROF"

// Options say where the profiles go; an empty path writes none.
type Options struct {
	CPU string // the CPU profile, written from Start to stop
	Mem string // the allocation profile (every allocation since the start, sampled), at stop
}

// WithEnv fills the paths left empty from TRIALCAT_PPROF=DIR: DIR/<name>-<pid>.cpu.pprof and
// DIR/<name>-<pid>.mem.pprof, so that the processes of one run never overwrite each other's.
func (o Options) WithEnv(getenv func(string) string, name string) Options {
	dir := getenv(EnvDir)
	if dir == "" {
		return o
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%d", name, os.Getpid()))
	if o.CPU == "" {
		o.CPU = base + ".cpu.pprof"
	}
	if o.Mem == "" {
		o.Mem = base + ".mem.pprof"
	}
	return o
}

// Start starts the CPU profile when o asks for one; stop ends it and writes the allocation
// profile. A folder that does not exist is made. stop is never nil.
func Start(o Options) (stop func() error, err error) {
	var cpu *os.File
	if o.CPU != "" {
		if cpu, err = create(o.CPU); err != nil {
			return func() error { return nil }, err
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return func() error { return nil }, fmt.Errorf("cpu profile %s: %w", o.CPU, err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if o.Mem != "" {
			errs = append(errs, writeAllocs(o.Mem))
		}
		return errors.Join(errs...)
	}, nil
}

func create(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("profile folder: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return f, nil
}

func writeAllocs(path string) error {
	f, err := create(path)
	if err != nil {
		return err
	}
	runtime.GC() // the heap's live part up to date
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("memory profile %s: %w", path, err)
	}
	return f.Close()
}
