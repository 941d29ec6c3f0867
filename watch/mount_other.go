//go:build !linux

package watch

import "log/slog"

// mountMonitor is Linux only: elsewhere mounts and unmounts inside a
// workspace are found by rescans.
type mountMonitor struct{ C chan struct{} }

func startMountMonitor(*slog.Logger) (*mountMonitor, error) { return nil, nil }

func (m *mountMonitor) stop() {}

func readMounts() (map[mountKey]struct{}, error) { return nil, nil }
