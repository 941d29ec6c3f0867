// Package deploy holds the systemd units and Kubernetes manifests of
// `coditect serve`, and the test that keeps them valid: each file parses,
// and every flag it passes exists in the real binary.
package deploy

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/coditect/coditect/internal/testbin"
)

// serveFlags runs `coditect serve --help` and returns the flags it lists
// (its own and the root's).
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(testbin.Coditect(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("coditect serve --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["role"] || !flags["store"] {
		t.Fatalf("could not read the flags from:\n%s", out)
	}
	return flags
}

// checkArgs checks a `coditect serve …` argument list.
func checkArgs(t *testing.T, where string, args []string, flags map[string]bool) {
	t.Helper()
	if len(args) == 0 || args[0] != "serve" {
		t.Errorf("%s: runs %q, want serve", where, args)
		return
	}
	roles := 0
	for i, a := range args {
		if i == 0 || !strings.HasPrefix(a, "--") {
			continue // serve, or a value of the previous flag
		}
		name, val, eq := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !eq && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			val = args[i+1]
		}
		if !flags[name] {
			t.Errorf("%s: flag --%s does not exist in `coditect serve`", where, name)
		}
		if name == "role" {
			roles++
			if val != "core" && val != "dashboard" && val != "all" {
				t.Errorf("%s: --role=%s", where, val)
			}
		}
		if name == "addr" && !strings.HasPrefix(val, "127.0.0.1:") && !contains(args, "--allow-remote") {
			t.Errorf("%s: --addr=%s beyond loopback without --allow-remote: the daemon would refuse to start", where, val)
		}
	}
	if roles != 1 {
		t.Errorf("%s: want exactly one --role", where)
	}
}

func contains(s []string, v string) bool {
	for _, e := range s {
		if e == v {
			return true
		}
	}
	return false
}

// Each systemd unit has its sections and an ExecStart of the binary's
// serve command with existing flags.
func TestMain(m *testing.M) { testbin.Main(m) }

func TestSystemdUnits(t *testing.T) {
	flags := serveFlags(t)
	files, _ := filepath.Glob("systemd/*.service")
	if len(files) != 2 {
		t.Fatalf("want the core and dashboard units, found %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string]map[string]string{}
		var cur string
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			switch {
			case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
				cur = strings.Trim(line, "[]")
				sections[cur] = map[string]string{}
			default:
				k, v, ok := strings.Cut(line, "=")
				if !ok || cur == "" {
					t.Fatalf("%s:%d: not a key=value in a section: %q", f, n, line)
				}
				sections[cur][k] = v
			}
		}
		for _, s := range []string{"Unit", "Service", "Install"} {
			if sections[s] == nil {
				t.Errorf("%s: no [%s]", f, s)
			}
		}
		exec := strings.Fields(sections["Service"]["ExecStart"])
		if len(exec) < 2 || filepath.Base(exec[0]) != "coditect" {
			t.Fatalf("%s: ExecStart %q", f, exec)
		}
		checkArgs(t, f, exec[1:], flags)
		if sections["Service"]["KillSignal"] != "SIGTERM" {
			t.Errorf("%s: the graceful shutdown needs KillSignal=SIGTERM", f)
		}
	}
}

// manifest is what the test reads of a Kubernetes manifest: the documents'
// kinds and names, each container's args, and the ConfigMaps mounted.
type manifest struct {
	kinds []string
	args  [][]string // per container
	refs  []string   // configMap names mounted
	names map[string]string
}

// k8sDoc is the part of a Kubernetes object the checks need.
type k8sDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Command []string `yaml:"command"`
					Args    []string `yaml:"args"`
				} `yaml:"containers"`
				Volumes []struct {
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// readManifest parses every YAML document of a file with a real YAML
// parser: a manifest that is not valid YAML fails here.
func readManifest(t *testing.T, file string) manifest {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := manifest{names: map[string]string{}}
	dec := yaml.NewDecoder(f)
	for {
		var d k8sDoc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not valid YAML: %v", file, err)
		}
		if d.Kind == "" {
			t.Fatalf("%s: a document without a kind", file)
		}
		m.kinds = append(m.kinds, d.Kind)
		m.names[d.Metadata.Name] = file
		for _, c := range d.Spec.Template.Spec.Containers {
			m.args = append(m.args, append(append([]string(nil), c.Command...), c.Args...))
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.ConfigMap != nil {
				m.refs = append(m.refs, v.ConfigMap.Name)
			}
		}
	}
	return m
}

func TestKubernetesManifests(t *testing.T) {
	flags := serveFlags(t)
	files, _ := filepath.Glob("kubernetes/*.yaml")
	kinds := map[string]int{}
	var refs []string
	names := map[string]bool{}
	for _, f := range files {
		m := readManifest(t, f)
		for _, k := range m.kinds {
			kinds[k]++
		}
		for i, a := range m.args {
			checkArgs(t, f, a, flags)
			if contains(a, "--role=core") && !strings.Contains(f, "daemonset") {
				t.Errorf("%s: container %d: core runs as a DaemonSet (one per node)", f, i)
			}
		}
		refs = append(refs, m.refs...)
		for n := range m.names {
			names[n] = true
		}
	}
	for k, n := range map[string]int{"DaemonSet": 1, "Deployment": 1, "Service": 1, "ConfigMap": 1} {
		if kinds[k] != n {
			t.Errorf("want %d %s, found %d", n, k, kinds[k])
		}
	}
	for _, r := range refs {
		if !names[r] {
			t.Errorf("a volume mounts ConfigMap %q, which no manifest defines", r)
		}
	}
	if len(refs) < 2 {
		t.Errorf("both the core and the dashboards mount the FDB cluster file ConfigMap; found %v", refs)
	}
}
