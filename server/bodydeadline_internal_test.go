package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// bodyDeadline cuts a body that arrives too slowly, and leaves alone a
// response that streams after its body was read, and a request without a
// body (the feed's handshake, MCP's GET stream).
func TestBodyDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	readErr := make(chan error, 1)
	srv := httptest.NewServer(bodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			readErr <- err
			return
		}
		if err != nil {
			t.Errorf("%s: reading the body: %v", r.URL.Path, err)
			return
		}
		// Stream past the body's deadline: the connection must still be
		// watched for the client going away, and not be cut.
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-time.After(3 * timeout):
			fmt.Fprintln(w, "done")
		case <-r.Context().Done():
			fmt.Fprintln(w, "canceled:", context.Cause(r.Context()))
		}
	}), timeout))
	defer srv.Close()

	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
		start := time.Now()
		select {
		case err := <-readErr:
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("reading a slow body: %v, want a timeout", err)
			}
			t.Logf("slow body cut after %v (timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
		case <-time.After(30 * time.Second):
			t.Fatal("a slow body was not cut")
		}
	})
	for _, method := range []string{"POST", "GET"} {
		t.Run("streamed response after a "+method, func(t *testing.T) {
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader(`{"jsonrpc":"2.0"}`)
			}
			req, _ := http.NewRequest(method, srv.URL+"/stream", body)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || line != "done\n" {
				t.Fatalf("streamed response: %q %v, want done", line, err)
			}
		})
	}
}
