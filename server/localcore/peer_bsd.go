//go:build darwin || freebsd

package localcore

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// peerUID is the uid of the peer of the Unix socket fd (LOCAL_PEERCRED).
func peerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return -1, fmt.Errorf("localcore: LOCAL_PEERCRED: %w", err)
	}
	return int(cred.Uid), nil
}
