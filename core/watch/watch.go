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
	dirs   map[string]*dir         // directory of subscribed paths -> its state
	busy   int                     // directories in busy mode
	closed bool

	stop chan struct{}
	wake chan struct{} // a directory entered busy mode
	wg   sync.WaitGroup
}

// dir is a directory holding subscribed files.
type dir struct {
	paths int // subscribed paths in it
	// busy: notifications are off and the poll loop stats its files every
	// busyPoll, because they changed faster than notifications pay for.
	busy      bool
	lastEvent time.Time // when a notification last came (not busy)
	burst     int       // notifications in a row closer than busyGap
	lastSeen  time.Time // when the fast poll last saw a change (busy)
}

// Busy mode. Every write to a watched directory costs the writer a
// notification in the kernel, even when the event merges with a queued
// one: an application committing 40,000 times a second paid about a tenth
// of its throughput for it. So a directory whose notifications come
// closer together than busyGap busyBurst times in a row (one commit alone
// makes two or three) is unwatched and its files are polled every
// busyPoll instead (what the capture loop's batching waits anyway); after
// busyQuiet without a change it is watched again.
const (
	busyGap   = 50 * time.Millisecond
	busyBurst = 4
	busyPoll  = 10 * time.Millisecond
	busyQuiet = time.Second
)

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
		dirs:     map[string]*dir{},
		stop:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
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
		name := filepath.Dir(p)
		d := w.dirs[name]
		if d == nil {
			d = &dir{}
			w.dirs[name] = d
			if w.notes != nil {
				if err := w.notes.add(name); err != nil {
					// Polling still covers this file.
					w.log.Warn("no file-change notifications for a directory; its files are polled", "dir", name, "interval", w.interval, "err", err)
				}
			}
		}
		d.paths++
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
		name := filepath.Dir(p)
		d := w.dirs[name]
		d.paths--
		if d.paths <= 0 {
			delete(w.dirs, name)
			if d.busy {
				w.busy--
			} else if w.notes != nil && !w.closed {
				_ = w.notes.remove(name) // fails only if the directory went away, which dropped the watch anyway
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

// changed tells the subscriptions of the file at path, and puts its
// directory in busy mode when notifications come too often.
func (w *Watcher) changed(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.byPath[path] {
		notify(s)
	}
	name := filepath.Dir(path)
	d := w.dirs[name]
	if d == nil || d.busy || w.closed {
		return
	}
	now := time.Now()
	if now.Sub(d.lastEvent) < busyGap {
		d.burst++
	} else {
		d.burst = 0
	}
	d.lastEvent = now
	if d.burst >= busyBurst && w.notes.remove(name) == nil {
		d.busy, d.lastSeen, d.burst = true, now, 0
		w.busy++
		select {
		case w.wake <- struct{}{}:
		default:
		}
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
// whose size, modification time or identity changed; and, while some
// directory is in busy mode, its files every busyPoll.
func (w *Watcher) poll() {
	defer w.wg.Done()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	fast := time.NewTicker(busyPoll)
	fast.Stop() // running only while a directory is busy
	defer fast.Stop()
	var fastC <-chan time.Time // nil while no directory is busy
	var subs []*sub
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
			fast.Reset(busyPoll)
			fastC = fast.C
			continue
		case <-fastC:
			if !w.pollBusy() {
				fast.Stop()
				fastC = nil
			}
			continue
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

// pollBusy stats the files of busy directories, watches again those quiet
// for busyQuiet, and reports whether any directory is still busy.
func (w *Watcher) pollBusy() bool {
	type busyDir struct {
		name string
		d    *dir
		subs []*sub
	}
	var busy []busyDir
	w.mu.Lock()
	for name, d := range w.dirs {
		if !d.busy {
			continue
		}
		b := busyDir{name: name, d: d}
		for _, s := range w.subs {
			if s.in(name) {
				b.subs = append(b.subs, s)
			}
		}
		busy = append(busy, b)
	}
	w.mu.Unlock()
	now := time.Now()
	for _, b := range busy {
		seen := false
		for _, s := range b.subs {
			if s.changed() {
				notify(s)
				seen = true
			}
		}
		w.mu.Lock()
		if seen {
			b.d.lastSeen = now
		}
		rearm := b.d.busy && !w.closed && w.dirs[b.name] == b.d && now.Sub(b.d.lastSeen) >= busyQuiet
		if rearm {
			if err := w.notes.add(b.name); err != nil {
				w.log.Debug("watch a quiet directory again", "dir", b.name, "err", err)
				b.d.lastSeen = now // try again later, polling meanwhile
				rearm = false
			} else {
				b.d.busy, b.d.lastEvent = false, time.Time{}
				w.busy--
			}
		}
		w.mu.Unlock()
		if rearm {
			// A change between the last stat and the new watch has no
			// event: look once more.
			for _, s := range b.subs {
				if s.changed() {
					notify(s)
				}
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.busy > 0
}

// in reports whether one of s's files is in the directory name.
func (s *sub) in(name string) bool {
	for _, p := range s.paths {
		if filepath.Dir(p) == name {
			return true
		}
	}
	return false
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
