//go:build unix && !linux

package cluster

import "syscall"

// sysProcAttr puts etcd in its own process group so a terminal Ctrl-C
// reaches only the harness. Pdeathsig is Linux-only: on other systems etcd
// processes can outlive a harness that is killed with SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
