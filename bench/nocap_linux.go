package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// execWithoutNetAdmin drops CAP_NET_ADMIN from this thread's bounding set
// and executes bin with args in place of this process: a program run by
// root then starts without CAP_NET_ADMIN (root's permitted set after exec
// is the bounding set), so that the kernel's net.core.rmem_max and
// wmem_max bound its socket buffers as they bound anyone else's.
func execWithoutNetAdmin(bin string, args []string) error {
	// The bounding set is per thread, and execve uses the calling thread's.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_NET_ADMIN, 0, 0, 0); err != nil {
		return fmt.Errorf("dropping CAP_NET_ADMIN: %w", err)
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return err
	}
	return syscall.Exec(path, append([]string{bin}, args...), os.Environ())
}
