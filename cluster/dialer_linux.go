package cluster

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// dialerOf tells which of the processes pids (pid → name) dialed in, a
// loopback TCP connection this process accepted: the kernel's table of
// TCP sockets (/proc/net/tcp) gives the inode of the socket at in's
// remote end, and the process that holds a descriptor of that socket
// dialed it. The dialing socket is established before accept returns, so
// it is found unless its process already closed it (closed: the kernel
// keeps an orphaned socket, with no inode, until its last bytes and FIN
// are through; seen for a few peer connections etcd dials at startup).
// One more look 10 ms later covers a table read while the kernel was
// still adding it.
func dialerOf(in net.Conn, pids map[int]string) (sender string, found, closed bool) {
	local, ok1 := in.LocalAddr().(*net.TCPAddr)
	remote, ok2 := in.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || remote.IP.To4() == nil || len(pids) == 0 {
		return "", false, false
	}
	for try := 0; try < 2; try++ {
		if try > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		inode, ok := socketInode(tcpAddrHex(remote), tcpAddrHex(local))
		if !ok {
			continue
		}
		if inode == 0 {
			return "", false, true
		}
		link := fmt.Sprintf("socket:[%d]", inode)
		for pid, name := range pids {
			if holdsSocket(pid, link) {
				return name, true, false
			}
		}
	}
	return "", false, false
}

// tcpAddrHex is an IPv4 address as /proc/net/tcp prints it: the address's
// 32 bits in host byte order, then the port, both in upper-case hex.
func tcpAddrHex(a *net.TCPAddr) string {
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.IP.To4()), a.Port)
}

// socketInode is the inode of the TCP socket from local to remote (as
// tcpAddrHex prints them), if the table has it: 0 for an orphaned socket,
// one its process closed.
func socketInode(local, remote string) (uint64, bool) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[1] != local || fields[2] != remote {
			continue
		}
		inode, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil {
			return 0, false
		}
		return inode, true
	}
	return 0, false
}

// holdsSocket reports whether process pid has a descriptor whose link is
// link ("socket:[inode]").
func holdsSocket(pid int, link string) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == link {
			return true
		}
	}
	return false
}

// canTellDialers: dialerOf works here.
const canTellDialers = true
