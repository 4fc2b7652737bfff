//go:build unix

package proc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// modeEnv names the environment variable that makes the test binary act as a child process.
const modeEnv = "PROC_TEST_MODE"

// child runs the fake child for mode and returns its exit code.
func child(mode string) int {
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	switch mode {
	case "ok":
		log.Info().Int("records", 5).Str("batch", "batch_3.json").Interface("usage", map[string]int{"in": 7}).Msg("batch started")
		log.Warn().Str("id", "NCT1").Msg("slow answer")
		fmt.Println(`{"event":"done","id":"NCT1"}`)
		return 0
	case "exit3":
		log.Error().Msg("giving up")
		return 3
	case "panic":
		panic("boom")
	case "sigkill-self":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour)
	case "hang":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("ready")
		<-sig
		log.Info().Msg("got SIGTERM, stopping")
		return 0
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "echo-stdin":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Println("echo " + sc.Text())
		}
		return 0
	case "info":
		wd, _ := os.Getwd()
		_ = json.NewEncoder(os.Stdout).Encode(childInfo{
			Env: os.Environ(), Dir: wd, PID: os.Getpid(), PGID: syscall.Getpgrp(),
		})
		return 0
	case "long":
		fmt.Fprintln(os.Stderr, strings.Repeat("e", 1<<20))
		fmt.Print(strings.Repeat("o", 300<<10)) // no line end before EOF
		return 0
	case "leak-pipe":
		// Start a grandchild that inherits our stdout and stderr, then exit at once: the pipes
		// stay open after this process exited.
		self, _ := os.Executable()
		cmd := exec.Command(self)
		cmd.Env = []string{modeEnv + "=hang", "GORACE=atexit_sleep_ms=0"}
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			log.Error().Err(err).Msg("start grandchild")
			return 1
		}
		fmt.Printf("gpid %d\n", cmd.Process.Pid)
		return 0
	case "parent":
		// Start a grandchild with Start (so with Pdeathsig), report its PID once it is ready,
		// then wait to be killed.
		self, _ := os.Executable()
		ready := make(chan struct{}, 1)
		p, err := Start(context.Background(), Spec{
			Name: "grandchild", Path: self, Env: []string{modeEnv + "=hang", "GORACE=atexit_sleep_ms=0"},
			OnStdout: func(line []byte) {
				if string(line) == "ready" {
					ready <- struct{}{}
				}
			},
		})
		if err != nil {
			log.Error().Err(err).Msg("start grandchild")
			return 1
		}
		<-ready
		fmt.Printf("gpid %d\n", p.PID())
		time.Sleep(time.Hour)
	default:
		log.Error().Str("mode", mode).Msg("unknown test mode")
		return 100
	}
	return 101
}

// childInfo is what mode "info" prints.
type childInfo struct {
	Env  []string
	Dir  string
	PID  int
	PGID int
}
