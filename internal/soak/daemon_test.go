package soak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemon is the running `coditect serve` under test.
type daemon struct {
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:PORT
	token  string // the admin token of the first start's login URL
	stderr *tailBuffer
}

var loginRE = regexp.MustCompile(`(http://127\.0\.0\.1:\d+)/#token=(\S+)`)

// startDaemon starts `coditect serve` on a fresh store, watching ws, and
// waits for the login URL it prints once it serves.
func startDaemon(t *testing.T, e *env, ws string) *daemon {
	t.Helper()
	cmd := exec.Command(e.bin, "serve", "--addr", "127.0.0.1:0", "--store", e.store, "--watch", ws,
		"--user", soakUser, "--toolsets", "core", "--toolsets", "coord", "--log-level", "warn")
	cmd.Env = e.environ()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stderr: newTailBuffer(64 << 10)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		defer close(found) // at EOF without the URL: the daemon exited
		for sc.Scan() {
			if m := loginRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case m := <-found:
		if m == nil {
			cmd.Wait()
			t.Fatalf("serve exited (%v) without printing its login URL; stderr:\n%s", cmd.ProcessState, d.stderr)
		}
		d.url, d.token = m[1], m[2]
	case <-time.After(30 * time.Second):
		t.Fatalf("serve printed no login URL within 30 s; stderr:\n%s", d.stderr)
	}
	return d
}

// stop sends SIGTERM and waits for a clean exit: the daemon commits its
// queued audit records before it exits 0.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM; stderr:\n%s", err, d.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop within 30 s of SIGTERM; stderr:\n%s", d.stderr)
	}
}

// sample is one reading of the daemon's /proc entry.
type sample struct {
	T      float64 `json:"t_s"`     // seconds since the load started
	RSSMB  float64 `json:"rss_mb"`  // resident set
	CPUPct float64 `json:"cpu_pct"` // of one core, over the last interval
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat;
// 100 on every Linux architecture Go supports.
const clockTick = 100

// sampleProc reads /proc/pid every second until ctx ends and returns the
// samples.
func sampleProc(ctx context.Context, pid int, start time.Time) []sample {
	var out []sample
	prevCPU, prevT := procCPU(pid), time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case now := <-tick.C:
			cpu := procCPU(pid)
			if cpu < 0 {
				return out
			}
			pct := float64(cpu-prevCPU) / clockTick / now.Sub(prevT).Seconds() * 100
			prevCPU, prevT = cpu, now
			out = append(out, sample{T: round1(now.Sub(start).Seconds()), RSSMB: round1(procRSS(pid) / 1024), CPUPct: round1(pct)})
		}
	}
}

// procCPU is utime+stime of pid in clock ticks, or -1 once it is gone.
func procCPU(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces: the fields follow the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64) // field 14, utime
	s, _ := strconv.ParseInt(f[12], 10, 64) // field 15, stime
	return u + s
}

// procRSS is VmRSS of pid in KiB.
func procRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb
		}
	}
	return 0
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// tailBuffer keeps the last max bytes written to it: a process's stderr,
// for the failure message, without growing for ten minutes.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
