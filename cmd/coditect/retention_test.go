package main

import (
	"strings"
	"testing"
)

func TestRetentionCLI(t *testing.T) {
	c := newCLI(t)
	c.ok("tenant", "create", "acme")
	c.ok("tenant", "create", "globex")
	wsA, wsG := t.TempDir(), t.TempDir()
	for i := 0; i < 3; i++ {
		c.ok("session", "start", "--tenant", "acme", "--title", "t", "--workspace", wsA)
		c.ok("session", "start", "--tenant", "globex", "--title", "t", "--workspace", wsG)
	}
	out := c.ok("tenant", "retention", "acme", "--max-events", "2")
	if !strings.Contains(out, "max 2 events") {
		t.Fatalf("retention set: %q", out)
	}
	c.fail("negative", "tenant", "retention", "acme", "--max-events", "-1")
	sweep := decode[map[string]int](t, c.ok("log", "sweep", "--json"))
	if sweep["acme"] == 0 || sweep["globex"] != 0 {
		t.Fatalf("sweep removed %v", sweep)
	}
	acme := strings.Split(strings.TrimSpace(c.ok("log", "tail", "--tenant", "acme", "-n", "100")), "\n")
	if len(acme) != 2 {
		t.Fatalf("acme keeps %d events, want 2:\n%s", len(acme), strings.Join(acme, "\n"))
	}
	globex := strings.Split(strings.TrimSpace(c.ok("log", "tail", "--tenant", "globex", "-n", "100")), "\n")
	if len(globex) < 4 {
		t.Fatalf("globex lost events to acme's policy: %d left", len(globex))
	}
}
