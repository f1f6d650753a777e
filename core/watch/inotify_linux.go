package watch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// settle is how long the reader leaves the inotify queue alone after
// each read. While it does, the kernel merges each new event into an
// identical one still queued, so an application appending to its WAL as
// fast as it can costs one event per settle period instead of one per
// write. Reading every event at once (as general-purpose watchers do)
// cost a writer doing 40,000 commits a second about a tenth of its
// throughput, and the daemon a fifth of a core in wake-ups. settle is
// short against the capture loop's own batching (10 ms), so it adds no
// lag.
const settle = 5 * time.Millisecond

// dirEvents are the events of a watched directory that can mean a
// subscribed file in it changed.
const dirEvents = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// inotify is a notifier on one Linux inotify instance.
type inotify struct {
	f       *os.File
	changed func(path string)
	lost    func()
	done    chan struct{}
	exited  chan struct{}

	mu   sync.Mutex
	dirs map[int32]string // watch descriptor -> directory
}

func newNotifier(changed func(path string), lost func()) (notifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	// A non-blocking descriptor goes to the runtime's poller, so Close
	// wakes a pending Read.
	n := &inotify{
		f:       os.NewFile(uintptr(fd), "inotify"),
		changed: changed,
		lost:    lost,
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		dirs:    map[int32]string{},
	}
	go n.read()
	return n, nil
}

func (n *inotify) add(dir string) error {
	wd, err := unix.InotifyAddWatch(int(n.f.Fd()), dir, dirEvents)
	if err != nil {
		return fmt.Errorf("inotify_add_watch %s: %w", dir, err)
	}
	n.mu.Lock()
	n.dirs[int32(wd)] = dir
	n.mu.Unlock()
	return nil
}

func (n *inotify) remove(dir string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for wd, d := range n.dirs {
		if d == dir {
			delete(n.dirs, wd)
			if _, err := unix.InotifyRmWatch(int(n.f.Fd()), uint32(wd)); err != nil {
				return fmt.Errorf("inotify_rm_watch %s: %w", dir, err)
			}
		}
	}
	return nil
}

func (n *inotify) watching() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.dirs)
}

func (n *inotify) close() error {
	close(n.done)
	err := n.f.Close()
	<-n.exited
	return err
}

// read delivers queued events, then lets the queue settle.
func (n *inotify) read() {
	defer close(n.exited)
	buf := make([]byte, 64<<10)
	pause := time.NewTimer(settle)
	defer pause.Stop()
	for {
		k, err := n.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				// The instance is unusable; the poll still sees every change.
				n.lost()
			}
			return
		}
		n.dispatch(buf[:k])
		pause.Reset(settle)
		select {
		case <-n.done:
			return
		case <-pause.C:
		}
	}
}

// dispatch decodes a read's worth of struct inotify_event.
func (n *inotify) dispatch(b []byte) {
	const head = unix.SizeofInotifyEvent
	for len(b) >= head {
		wd := int32(binary.NativeEndian.Uint32(b[0:]))
		mask := binary.NativeEndian.Uint32(b[4:])
		size := int(binary.NativeEndian.Uint32(b[12:]))
		if len(b) < head+size {
			return
		}
		name := string(b[head : head+size])
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		b = b[head+size:]
		if mask&unix.IN_Q_OVERFLOW != 0 {
			n.lost()
			continue
		}
		n.mu.Lock()
		dir, ok := n.dirs[wd]
		if ok && mask&unix.IN_IGNORED != 0 {
			delete(n.dirs, wd) // the directory went away
		}
		n.mu.Unlock()
		if ok && name != "" {
			n.changed(filepath.Join(dir, name))
		}
	}
}
