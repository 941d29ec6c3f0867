package watch

import (
	"fmt"
	"os"
	"sync"
)

// EventsFile is an append-only file of JSON lines, rotated by size: when a
// write would take it past MaxSize, name is renamed to name.1 (name.1 to
// name.2, and so on, keeping Keep old files) and a new file is started.
// Each Write is one whole line, never split across files. It is safe for
// concurrent use.
type EventsFile struct {
	name    string
	maxSize int64
	keep    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Default rotation.
const (
	DefaultEventsFileSize = 64 << 20
	DefaultEventsFileKeep = 5
)

// OpenEventsFile opens (creating or appending to) the events file name.
// maxSize and keep default when zero.
func OpenEventsFile(name string, maxSize int64, keep int) (*EventsFile, error) {
	if maxSize <= 0 {
		maxSize = DefaultEventsFileSize
	}
	if keep <= 0 {
		keep = DefaultEventsFileKeep
	}
	e := &EventsFile{name: name, maxSize: maxSize, keep: keep}
	if err := e.open(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *EventsFile) open() error {
	f, err := os.OpenFile(e.name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("watch: events file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("watch: events file: %w", err)
	}
	e.f, e.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first when p would not fit.
func (e *EventsFile) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return 0, os.ErrClosed
	}
	if e.size > 0 && e.size+int64(len(p)) > e.maxSize {
		if err := e.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := e.f.Write(p)
	e.size += int64(n)
	return n, err
}

func (e *EventsFile) rotate() error {
	if err := e.f.Close(); err != nil {
		return fmt.Errorf("watch: events file: %w", err)
	}
	e.f = nil
	os.Remove(fmt.Sprintf("%s.%d", e.name, e.keep))
	for i := e.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", e.name, i), fmt.Sprintf("%s.%d", e.name, i+1))
	}
	if err := os.Rename(e.name, e.name+".1"); err != nil {
		return fmt.Errorf("watch: rotating the events file: %w", err)
	}
	return e.open()
}

// Close closes the file.
func (e *EventsFile) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	return err
}
