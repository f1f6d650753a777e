// Package watch tells many databases' capture loops when their files
// change, with one file-notification instance and one poll loop for the
// whole process.
//
// Why shared: Linux allows 128 inotify instances per user by default, so
// one instance per database fails long before 1,000 databases, and a poll
// goroutine with its own timer per database wakes the process N times a
// second while nothing happens. A Watcher holds one inotify instance that
// watches each database's directory once (however many databases share
// it), and a single loop that stats every subscribed file once per poll
// interval. That loop is the safety net for what notifications miss: a
// lost event (queue overflow), a file system that has no notifications
// (network and FUSE file systems), or a directory replaced under the
// watch. A change is therefore noticed at once where notifications work,
// and within one poll interval everywhere. Notifications are implemented
// for Linux (inotify); on other systems the poll alone sees changes.
//
// The poll costs one stat per subscribed file per interval, nothing else:
// no storage request and no database access, so an idle daemon stays idle.
package watch

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Options configure a Watcher.
type Options struct {
	// PollInterval is how often every subscribed file is stat'ed, whether
	// or not notifications work; zero means 1s.
	PollInterval time.Duration
	// PollOnly turns file notifications off: changes are seen only by the
	// poll. For file systems whose notifications are known to be wrong,
	// and for tests.
	PollOnly bool
	Logger   *slog.Logger
}

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("watcher closed")

// Watcher reports changes of subscribed files. It is safe for concurrent
// use; one Watcher serves every database of a process.
type Watcher struct {
	log      *slog.Logger
	interval time.Duration
	notes    notifier // nil: polling only

	mu     sync.Mutex
	next   int
	subs   map[int]*sub
	byPath map[string]map[int]*sub // cleaned absolute file path -> subscriptions
	dirs   map[string]int          // watched directory -> subscribed paths in it
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// sub is one subscription: its files and the channel it is told on.
type sub struct {
	paths []string
	ch    chan struct{}
	// last is each path's state at the previous poll; only the poll
	// loop touches it after Add published the subscription.
	last []os.FileInfo
}

// New starts a Watcher. Without file notifications (the OS has none, or
// the per-user limit of inotify instances is reached) it still works, by
// polling alone, and says so in the log.
func New(opts Options) *Watcher {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Watcher{
		log:      opts.Logger,
		interval: opts.PollInterval,
		subs:     map[int]*sub{},
		byPath:   map[string]map[int]*sub{},
		dirs:     map[string]int{},
		stop:     make(chan struct{}),
	}
	if !opts.PollOnly {
		notes, err := newNotifier(w.changed, w.lost)
		if err != nil {
			w.log.Warn("no file-change notifications; changes are seen by polling only", "interval", w.interval, "err", err)
		} else {
			w.notes = notes
		}
	}
	w.wg.Add(1)
	go w.poll()
	return w
}

// Add subscribes to changes of the files at paths (which need not exist
// yet; their directories should). The returned channel receives a value
// after any of them changes; values coalesce, so a receiver that is busy
// sees one value for many changes and should then look at everything.
// remove ends the subscription; calling it again does nothing.
func (w *Watcher) Add(paths ...string) (changes <-chan struct{}, remove func(), err error) {
	s := &sub{ch: make(chan struct{}, 1)}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, nil, fmt.Errorf("watch %s: %w", p, err)
		}
		s.paths = append(s.paths, abs)
		fi, _ := os.Stat(abs)
		s.last = append(s.last, fi)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, nil, ErrClosed
	}
	for _, p := range s.paths {
		dir := filepath.Dir(p)
		if w.notes != nil && w.dirs[dir] == 0 {
			if err := w.notes.add(dir); err != nil {
				// Polling still covers this file.
				w.log.Warn("no file-change notifications for a directory; its files are polled", "dir", dir, "interval", w.interval, "err", err)
			}
		}
		w.dirs[dir]++
	}
	id := w.next
	w.next++
	w.subs[id] = s
	for _, p := range s.paths {
		if w.byPath[p] == nil {
			w.byPath[p] = map[int]*sub{}
		}
		w.byPath[p][id] = s
	}
	var once sync.Once
	return s.ch, func() { once.Do(func() { w.remove(id) }) }, nil
}

func (w *Watcher) remove(id int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.subs[id]
	if !ok {
		return
	}
	delete(w.subs, id)
	for _, p := range s.paths {
		delete(w.byPath[p], id)
		if len(w.byPath[p]) == 0 {
			delete(w.byPath, p)
		}
		dir := filepath.Dir(p)
		w.dirs[dir]--
		if w.dirs[dir] <= 0 {
			delete(w.dirs, dir)
			if w.notes != nil && !w.closed {
				_ = w.notes.remove(dir) // fails only if the directory went away, which dropped the watch anyway
			}
		}
	}
}

// Close stops the Watcher. Subscribers' channels stay open and receive
// nothing more.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	var err error
	if w.notes != nil {
		err = w.notes.close()
	}
	w.wg.Wait()
	return err
}

// Notifying reports whether file notifications are in use (otherwise
// changes are seen by polling alone).
func (w *Watcher) Notifying() bool { return w.notes != nil }

func notify(s *sub) {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// notifier reports changes in watched directories: changed gets the path
// of a file that changed, lost is called when events were dropped.
type notifier interface {
	add(dir string) error
	remove(dir string) error
	watching() int // how many directories are watched
	close() error
}

// changed tells the subscriptions of the file at path.
func (w *Watcher) changed(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.byPath[path] {
		notify(s)
	}
}

// lost tells every subscriber to look: after an overflow some events are
// gone, and any file may have changed.
func (w *Watcher) lost() {
	w.log.Debug("file notifications overflowed; telling every database to look")
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.subs {
		notify(s)
	}
}

// poll stats every subscribed file once per interval and reports those
// whose size, modification time or identity changed.
func (w *Watcher) poll() {
	defer w.wg.Done()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var subs []*sub
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		subs = subs[:0]
		w.mu.Lock()
		for _, s := range w.subs {
			subs = append(subs, s)
		}
		w.mu.Unlock()
		for _, s := range subs {
			if s.changed() {
				notify(s)
			}
		}
	}
}

// changed stats s's files and remembers what it saw.
func (s *sub) changed() bool {
	changed := false
	for i, p := range s.paths {
		fi, _ := os.Stat(p)
		if differ(s.last[i], fi) {
			changed = true
		}
		s.last[i] = fi
	}
	return changed
}

// differ reports whether a file changed between two stats (nil: absent).
func differ(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return (a == nil) != (b == nil)
	}
	return a.Size() != b.Size() || !a.ModTime().Equal(b.ModTime()) || !os.SameFile(a, b)
}
