//go:build linux

package cluster

import "syscall"

// sysProcAttr puts etcd in its own process group, so a terminal Ctrl-C
// (SIGINT to the foreground group) reaches only the harness, which then
// stops the members itself; and asks the kernel to SIGKILL etcd when the
// harness dies (go test timeout panic, kill -9), so processes never leak.
//
// Pdeathsig is tied to the OS thread that forked the child, not the whole
// process. The Go runtime only terminates a thread when a goroutine exits
// while locked to it with runtime.LockOSThread; so do not call Start from
// such a goroutine. Otherwise the signal fires only when the harness dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
