package session

import "testing"

func TestOldProjectName(t *testing.T) {
	for ws, want := range map[string]string{
		"/home/alice/src/webapp": "webapp",
		`C:\src\project`:         "project",
		`\\server\share\repo`:    "repo",
		"/":                      "workspace",
		`C:\`:                    "workspace",
		"/srv/ app ":             "workspace", // outer spaces: no valid project name
	} {
		if got := oldProjectName(ws); got != want {
			t.Errorf("oldProjectName(%q) = %q, want %q", ws, got, want)
		}
	}
}

func TestBelow(t *testing.T) {
	for _, c := range []struct {
		dir, p, rel string
		ok          bool
	}{
		{"/src/app", "/src/app/services/api", "services/api", true},
		{"/src/app", "/src/app", "", false},
		{"/src/app", "/src/application", "", false},
		{`C:\src\app`, `C:\src\app\lib\x`, "lib/x", true},
		{"/", "/src", "src", true},
	} {
		if rel, ok := below(c.dir, c.p); rel != c.rel || ok != c.ok {
			t.Errorf("below(%q, %q) = %q, %v; want %q, %v", c.dir, c.p, rel, ok, c.rel, c.ok)
		}
	}
}
