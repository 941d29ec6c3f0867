package localcore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// An IDE connection (hello kind "ide") carries the IDE protocol's frames
// (LSP base protocol: headers, a blank line, Content-Length bytes of body)
// untouched both ways. When the core's session ends it writes one more
// header block without a body, the exit trailer, and closes: the
// forwarder exits with the status the core's session returned. A
// connection that ends without a trailer lost its core.

// exitHeader names the exit status in the trailer.
const exitHeader = "Coditect-Exit"

// maxHeaderLine bounds one header line of a frame from the core.
const maxHeaderLine = 4 << 10

// WriteExit writes the exit trailer with status code to w, the core's end
// of an IDE connection, after the session's last frame.
func WriteExit(w io.Writer, code int) error {
	_, err := fmt.Fprintf(w, "%s: %d\r\n\r\n", exitHeader, code)
	return err
}

// ErrCoreLost: the core's end of an IDE connection closed without an
// exit trailer (the core exited or was killed mid-session). The session's
// documents lived in that core, so the session cannot be carried over;
// the editor starts the server again.
var ErrCoreLost = errors.New("the local core ended the IDE session without an exit status (it exited or was killed); the editor has to start the server again")

// ForwardIDE relays an IDE client (frames on in and out) over c, a core
// connection past its hello, until the core's session ends, and returns
// its exit status. When in ends, the core reads EOF (the client went
// away), so c must half-close (a Unix socket does). It returns
// ErrCoreLost, with status 1, when the core went away first.
func ForwardIDE(ctx context.Context, in io.Reader, out io.Writer, c net.Conn) (int, error) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	go func() {
		// Client to core: bytes as they come. The core's end reads EOF when
		// the client's input ends.
		_, _ = io.Copy(c, in)
		_ = closeWrite(c)
	}()
	code, err := copyFrames(bufio.NewReaderSize(c, 64<<10), out)
	if err != nil && ctx.Err() != nil {
		return 1, ctx.Err()
	}
	return code, err
}

// copyFrames copies frames from r to out until the exit trailer, whose
// status it returns.
func copyFrames(r *bufio.Reader, out io.Writer) (int, error) {
	var head bytes.Buffer
	for {
		head.Reset()
		length, code := -1, -1
		for {
			line, err := r.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxHeaderLine {
				return 1, fmt.Errorf("localcore: a frame header from the core is longer than %d bytes", maxHeaderLine)
			}
			if err != nil {
				if head.Len() == 0 && len(line) == 0 {
					return 1, ErrCoreLost
				}
				return 1, fmt.Errorf("%w (mid-frame: %v)", ErrCoreLost, err)
			}
			head.Write(line)
			field := strings.TrimRight(string(line), "\r\n")
			if field == "" {
				break
			}
			name, value, ok := strings.Cut(field, ":")
			if !ok {
				return 1, fmt.Errorf("localcore: a frame header from the core without a colon: %q", field)
			}
			value = strings.TrimSpace(value)
			switch {
			case strings.EqualFold(name, "Content-Length"):
				n, err := strconv.Atoi(value)
				if err != nil || n < 0 {
					return 1, fmt.Errorf("localcore: a frame from the core with Content-Length %q", value)
				}
				length = n
			case strings.EqualFold(name, exitHeader):
				n, err := strconv.Atoi(value)
				if err != nil {
					return 1, fmt.Errorf("localcore: an exit trailer from the core with status %q", value)
				}
				code = n
			}
		}
		if code >= 0 && length < 0 {
			return code, nil
		}
		if length < 0 {
			return 1, errors.New("localcore: a frame from the core without Content-Length")
		}
		if _, err := out.Write(head.Bytes()); err != nil {
			return 1, fmt.Errorf("localcore: writing to the editor: %w", err)
		}
		if _, err := io.CopyN(out, r, int64(length)); err != nil {
			if errors.Is(err, io.EOF) {
				return 1, fmt.Errorf("%w (mid-frame)", ErrCoreLost)
			}
			return 1, fmt.Errorf("localcore: relaying a frame: %w", err)
		}
	}
}
