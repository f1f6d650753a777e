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
	gone    func(dir string)
	done    chan struct{}
	exited  chan struct{}

	mu   sync.Mutex
	dirs map[int32]string // watch descriptor -> directory
}

func newNotifier(changed func(path string), lost func(), gone func(dir string)) (notifier, error) {
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
		gone:    gone,
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
	defer n.mu.Unlock()
	if other, ok := n.dirs[int32(wd)]; ok && other != dir {
		// The same directory under another path (a symbolic link or a
		// bind mount): the kernel reports its events once, under the
		// other path, so this path's files would never be told.
		return fmt.Errorf("inotify_add_watch %s: the same directory is watched as %s", dir, other)
	}
	n.dirs[int32(wd)] = dir
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
				// The instance is unusable; the poll still sees every
				// change, at the untrusted interval.
				n.lost()
				n.mu.Lock()
				var dirs []string
				for wd, dir := range n.dirs {
					dirs = append(dirs, dir)
					delete(n.dirs, wd)
				}
				n.mu.Unlock()
				for _, dir := range dirs {
					n.gone(dir)
				}
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
		ended := ok && mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0
		if ended {
			// The directory went away, or its path now names another
			// (moved: the watch follows the old one, so drop it).
			delete(n.dirs, wd)
			if mask&unix.IN_IGNORED == 0 {
				_, _ = unix.InotifyRmWatch(int(n.f.Fd()), uint32(wd)) // fails only if the kernel dropped it already
			}
		}
		n.mu.Unlock()
		if ok && name != "" {
			n.changed(filepath.Join(dir, name))
		}
		if ended {
			n.gone(dir)
		}
	}
}
