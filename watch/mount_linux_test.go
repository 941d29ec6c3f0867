package watch

import (
	"reflect"
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	got := parseMountInfo(`22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:32 / /home/ada/my\040work/mnt\134x rw - tmpfs tmpfs rw
short line
37 22 0:33 /sub /srv/data rw master:2 - ext4 /dev/sdb1 rw
`)
	want := map[mountKey]struct{}{
		{"22", "/"}:                       {},
		{"36", `/home/ada/my work/mnt\x`}: {},
		{"37", "/srv/data"}:               {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if m, err := readMounts(); err != nil || len(m) == 0 {
		t.Errorf("readMounts: %d mounts, %v", len(m), err)
	}
}

func TestMountRels(t *testing.T) {
	root := "/w/ws"
	for _, c := range []struct {
		points []string
		want   []string
	}{
		{[]string{"/w/ws/a/b", "/w/ws/a", "/w/ws/c", "/w/wsx", "/elsewhere"}, []string{"a", "c"}},
		{[]string{"/w/ws/a", "/w"}, []string{""}},
		{[]string{"/w/ws"}, []string{""}},
		{[]string{"/w/ws/a-b", "/w/ws/a/b", "/w/ws/a"}, []string{"a", "a-b"}},
		{[]string{"/other"}, nil},
	} {
		if got := mountRels(root, c.points); !reflect.DeepEqual(got, c.want) {
			t.Errorf("mountRels(%v) = %q, want %q", c.points, got, c.want)
		}
	}
}
