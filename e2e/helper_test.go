package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// helperEnv selects a helper mode when this test binary is re-run as a
// child process.
const helperEnv = "P2PD_E2E_HELPER"

func helperCommand(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// runHelper runs a helper mode and reports whether this process was one.
func runHelper() bool {
	switch os.Getenv(helperEnv) {
	case "echo":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%d\n", ln.Addr().(*net.TCPAddr).Port)
		var accepted atomic.Int64
		go func() {
			io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
			if os.Getenv("P2PD_E2E_DEBUG") != "" {
				fmt.Fprintln(os.Stderr, "echo helper: accepted", accepted.Load())
			}
			os.Exit(0)
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				fds, _ := os.ReadDir("/proc/self/fd")
				var lim syscall.Rlimit
				syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
				fmt.Fprintln(os.Stderr, "echo helper: accept:", err, len(fds), lim.Cur, lim.Max)
				time.Sleep(10 * time.Millisecond) // EMFILE and friends pass
				continue
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				echoHandler(c)
			}()
		}
	}
	return false
}
