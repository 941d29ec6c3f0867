package atomicwrite_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coditect/coditect/internal/atomicwrite"
)

func openRoot(t *testing.T) (string, *os.Root) {
	t.Helper()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return dir, root
}

// tree lists the paths below dir, '/'-separated.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// created returns the mode a file created with perm gets here (perm less
// the umask).
func created(t *testing.T, perm fs.FileMode) fs.FileMode {
	t.Helper()
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(p, nil, perm); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestStageCommit(t *testing.T) {
	cases := []struct {
		name     string
		existing fs.FileMode // 0: no file yet
		rel      string
		mode     fs.FileMode
		want     fs.FileMode
	}{
		{"new file in new directories", 0, "a/b/c.txt", 0o666, created(t, 0o666)},
		{"new file keeps the mode given", 0, "x.sh", 0o640, created(t, 0o640)},
		{"replaced file keeps its mode", 0o751, "run.sh", 0o751, 0o751},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, root := openRoot(t)
			if tc.existing != 0 {
				if err := os.WriteFile(filepath.Join(dir, tc.rel), []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(dir, tc.rel), tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			s, err := atomicwrite.Stage(root, tc.rel, []byte("new"), tc.mode, tc.existing == 0)
			if err != nil {
				t.Fatal(err)
			}
			// Before Commit the file is untouched and the content waits
			// in a "~" temporary beside it, which the watcher ignores.
			var temps []string
			for _, p := range tree(t, dir) {
				if strings.Contains(p, ".coditect-") {
					temps = append(temps, p)
				}
			}
			if len(temps) != 1 || !strings.HasSuffix(temps[0], "~") || filepath.Dir(temps[0]) != filepath.Dir(tc.rel) {
				t.Fatalf("temporaries %q: want one, beside %s, ending in ~", temps, tc.rel)
			}
			if tc.existing != 0 {
				if b, _ := os.ReadFile(filepath.Join(dir, tc.rel)); string(b) != "old" {
					t.Fatalf("before Commit the file holds %q, want old", b)
				}
			}
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
			s.Abort() // after Commit: nothing to undo
			fi, err := os.Stat(filepath.Join(dir, tc.rel))
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, tc.rel)); string(b) != "new" {
				t.Errorf("file holds %q, want new", b)
			}
			if fi.Mode().Perm() != tc.want {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.want)
			}
			for _, p := range tree(t, dir) {
				if strings.HasSuffix(p, "~") {
					t.Errorf("temporary %s left behind", p)
				}
			}
		})
	}
}

// A change given up leaves the tree as it was: no temporary, none of the
// directories made for it, and a directory that was there stays.
func TestStageAbort(t *testing.T) {
	dir, root := openRoot(t)
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := atomicwrite.Stage(root, "a/b/c/f.txt", []byte("x"), 0o666, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); len(got) != 4 {
		t.Fatalf("staged tree %q: want a, a/b, a/b/c and the temporary", got)
	}
	s.Abort()
	if got := tree(t, dir); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after Abort the tree is %q, want [a]", got)
	}
}

func TestMakeDirsFails(t *testing.T) {
	dir, root := openRoot(t)
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := atomicwrite.MakeDirs(root, "f/sub")
	var nd *atomicwrite.NotDirError
	if !errors.As(err, &nd) || nd.Path != "f" {
		t.Fatalf("MakeDirs through a file: %v, want NotDirError for f", err)
	}
	// A failure part-way removes the directories made before it.
	if _, err := atomicwrite.MakeDirs(root, "n1/n2/"+strings.Repeat("x", 300)); err == nil {
		t.Fatal("MakeDirs of a 300-byte name succeeded")
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"f"}) {
		t.Errorf("after a failed MakeDirs the tree is %q, want [f]", got)
	}
}

// A symbolic link cannot lead a change out of the root.
func TestConfined(t *testing.T) {
	dir, root := openRoot(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	if _, err := atomicwrite.Stage(root, "out/f.txt", []byte("x"), 0o666, true); err == nil {
		t.Error("Stage through a link out of the root succeeded")
	}
	if err := os.WriteFile(filepath.Join(outside, "g"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicwrite.Rename(root, "out/g", "g"); err == nil {
		t.Error("Rename from outside the root succeeded")
	}
	if err := atomicwrite.Remove(root, "out/g"); err == nil {
		t.Error("Remove outside the root succeeded")
	}
	if got := tree(t, outside); !slices.Equal(got, []string{"g"}) {
		t.Errorf("outside the root: %q, want [g]", got)
	}
}

func TestRenameRemove(t *testing.T) {
	dir, root := openRoot(t)
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := atomicwrite.MakeDirs(root, "d/e"); err != nil {
		t.Fatal(err)
	}
	if err := atomicwrite.Rename(root, "a.txt", "d/e/b.txt"); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"d", "d/e", "d/e/b.txt"}) {
		t.Errorf("after Rename: %q", got)
	}
	if err := atomicwrite.Remove(root, "d/e/b.txt"); err != nil {
		t.Fatal(err)
	}
	if err := atomicwrite.Remove(root, "d/e/b.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removing a missing file: %v, want ErrNotExist", err)
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"d", "d/e"}) {
		t.Errorf("after Remove: %q", got)
	}
}
