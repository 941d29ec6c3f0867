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

// WithInput fails: the forwarder reads its client's input.
func (a *Answers) WithInput(in *os.File, maxLine int) error { return errNoAnswers }

func sendAnswers(c net.Conn, a *Answers, reads bool) error { return errNoAnswers }

// passed is what a client passes its core after the hello where direct
// answers work.
type passed struct {
	out   *os.File
	ring  *ring
	in    *os.File
	j     *journal
	unmap func()
}

func recvAnswers(c net.Conn, reads bool) (*passed, error) { return nil, errNoAnswers }
