package watch

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// File system magic numbers (statfs(2) f_type) of the file systems that
// deliver no inotify events for changes made on the other side: the host
// of a WSL2 or VM share, another NFS or SMB client, a FUSE daemon.
var remoteMagic = map[int64]string{
	0x01021997: "9p (WSL2 drvfs, VM shares)",
	0x65735546: "FUSE",
	0x6969:     "NFS",
	0x517b:     "SMB",
	0xff534d42: "CIFS",
	0xfe534d42: "SMB2",
	0x6a656a63: "virtiofs",
	0x00c36400: "CephFS",
	0x5346414f: "AFS",
	0x73757245: "Coda",
	0x0bd00bd0: "Lustre",
	0x47504653: "GPFS",
}

// localMagic are the file systems whose inotify events are complete.
var localMagic = map[int64]string{
	0xef53:     "ext2/3/4",
	0x58465342: "XFS",
	0x9123683e: "Btrfs",
	0x01021994: "tmpfs",
	0x794c7630: "overlayfs",
	0x2fc12fc1: "ZFS",
	0xf2f52010: "F2FS",
	0xca451a4e: "bcachefs",
	0x858458f6: "ramfs",
	0x3153464a: "JFS",
	0x52654973: "ReiserFS",
	0x5346544e: "NTFS (ntfs3)",
	0x4d44:     "FAT",
	0x2011bab0: "exFAT",
}

// remoteFSTypes are /proc/mounts type names that need polling.
var remoteFSTypes = []string{"9p", "drvfs", "fuse", "nfs", "nfs4", "cifs", "smb3", "smbfs", "virtiofs", "ceph", "afs", "sshfs"}

// fsKind classifies the file system of dir: "remote" (poll), "local"
// (notify) or "unknown" (probe), with a description for the log.
func fsKind(dir string) (kind, desc string) {
	if wslMount(dir) {
		return "remote", "WSL drive mount " + dir
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown", "statfs: " + err.Error()
	}
	magic := int64(st.Type) & 0xffffffff //nolint:unconvert // Type's width varies by architecture
	if d, ok := remoteMagic[magic]; ok {
		return "remote", d
	}
	if d, ok := localMagic[magic]; ok {
		return "local", d
	}
	if t := mountType(dir); t != "" {
		for _, r := range remoteFSTypes {
			if t == r || strings.HasPrefix(t, r+".") {
				return "remote", t
			}
		}
	}
	return "unknown", "file system magic 0x" + strconv.FormatInt(magic, 16)
}

// wslMount reports whether dir is a Windows drive seen from WSL
// (/mnt/c/...).
func wslMount(dir string) bool {
	if os.Getenv("WSL_DISTRO_NAME") == "" && !procVersionSays("microsoft") {
		return false
	}
	rest, ok := strings.CutPrefix(dir, "/mnt/")
	return ok && len(rest) >= 1 && rest[0] >= 'a' && rest[0] <= 'z' && (len(rest) == 1 || rest[1] == '/')
}

func procVersionSays(word string) bool {
	b, err := os.ReadFile("/proc/version")
	return err == nil && strings.Contains(strings.ToLower(string(b)), word)
}

// mountType returns the type of the mount holding dir, from /proc/mounts.
func mountType(dir string) string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, typ := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		mp := strings.ReplaceAll(fields[1], `\040`, " ")
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, fields[2]
		}
	}
	return typ
}

// inotifyLimit returns fs.inotify.max_user_watches, "" when unreadable.
func inotifyLimit() string {
	b, err := os.ReadFile(filepath.Join("/proc/sys/fs/inotify", "max_user_watches"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
