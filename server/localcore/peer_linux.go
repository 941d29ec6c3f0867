package localcore

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// peerUID is the uid of the peer of the Unix socket fd (SO_PEERCRED).
func peerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return -1, fmt.Errorf("localcore: SO_PEERCRED: %w", err)
	}
	return int(cred.Uid), nil
}
