//go:build !linux

package localcore

import (
	"errors"
	"net"
	"os"
)

// answersSupported: direct answers need memfd_create; elsewhere the
// forwarder relays the core's answers.
const answersSupported = false

var errNoAnswers = errors.New("localcore: direct answers need Linux")

// NewAnswers fails: the forwarder relays the core's answers.
func NewAnswers(out *os.File) (*Answers, error) { return nil, errNoAnswers }

func sendAnswers(c net.Conn, a *Answers) error { return errNoAnswers }

func recvAnswers(c net.Conn) (*os.File, *ring, func(), error) { return nil, nil, nil, errNoAnswers }
