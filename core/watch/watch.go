// Package watch tells many databases' capture loops when their files
// change, with one file-notification instance and one poll loop for the
// whole process.
//
// Why shared: Linux allows 128 inotify instances per user by default, so
// one instance per database fails long before 1,000 databases, and a poll
// goroutine with its own timer per database wakes the process N times a
// second while nothing happens. A Watcher holds one inotify instance that
// watches each database's directory once (however many databases share
// it), and a single poll loop with a single timer that stats subscribed
// files. That poll is the safety net for what notifications miss: a lost
// event (queue overflow), a file system that has no notifications
// (network and FUSE file systems), or a directory replaced under the
// watch. A change is therefore noticed at once where notifications work,
// and within one poll interval everywhere. Notifications are implemented
// for Linux (inotify); on other systems the poll alone sees changes.
//
// Why two poll intervals: an idle daemon should not wake every second
// where the poll has nothing to catch. A directory's notifications are
// trusted when an inotify watch is on it and its file system is a local
// one whose every write through the kernel produces an event (ext2/3/4,
// xfs, btrfs, tmpfs, f2fs, zfs, bcachefs); its files are stat'ed only
// every TrustedPollInterval (30 s). Every other directory — network,
// FUSE, overlay or unknown file systems, no watch, busy mode — is stat'ed
// every PollInterval (1 s) as before. A queue overflow (for a while), a
// watch the kernel dropped (the directory deleted, moved or unmounted)
// and busy mode make a directory untrusted at once. The timer is set to
// the earliest due poll, and every poll falls on one time grid so that
// directories share wake-ups: a daemon whose directories are all trusted
// wakes every TrustedPollInterval, not every second nor once per
// database. A directory's file system is read once, when it is first
// watched; one mounted over it later keeps the old verdict until its
// files are no longer subscribed (the trusted poll still sees changes).
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

// DefaultTrustedPollInterval is the TrustedPollInterval used when none is
// given. It bounds how late a change is seen in a trusted directory if a
// notification is ever lost without an overflow event, which these file
// systems do not do; against that, 30 s costs one wake-up and two stats
// per database per 30 s (2,000 stats a second become 67 for 1,000
// databases), so an idle daemon is nearly free.
const DefaultTrustedPollInterval = 30 * time.Second

// Options configure a Watcher.
type Options struct {
	// PollInterval is how often the files of directories whose
	// notifications are not trusted are stat'ed; zero means 1s.
	PollInterval time.Duration
	// TrustedPollInterval is how often the files of directories whose
	// notifications are trusted (see the package doc) are stat'ed; zero
	// means DefaultTrustedPollInterval. It is never shorter than
	// PollInterval.
	TrustedPollInterval time.Duration
	// PollOnly turns file notifications off: changes are seen only by the
	// poll, every PollInterval. For file systems whose notifications are
	// known to be wrong, and for tests.
	PollOnly bool
	Logger   *slog.Logger
}

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("watcher closed")

// Watcher reports changes of subscribed files. It is safe for concurrent
// use; one Watcher serves every database of a process.
type Watcher struct {
	log      *slog.Logger
	interval time.Duration // untrusted directories
	trusted  time.Duration // trusted directories
	notes    notifier      // nil: polling only
	hooks    hooks
	start    time.Time // origin of the polls' time grid (see align)

	mu     sync.Mutex
	next   int
	subs   map[int]*sub
	byPath map[string]map[int]*sub // cleaned absolute file path -> subscriptions
	dirs   map[string]*dir         // directory of subscribed paths -> its state
	closed bool

	stop    chan struct{}
	resched chan struct{} // a directory's next poll moved earlier
	wg      sync.WaitGroup
}

// hooks are the Watcher's views of the system, which tests replace to
// see what the poll does and to pretend a file system type.
type hooks struct {
	stat   func(path string) (os.FileInfo, error)
	fsType func(dir string) (uint32, error) // statfs f_type
	woke   func()                           // the poll timer fired
}

// dir is a directory holding subscribed files.
type dir struct {
	paths int // subscribed paths in it
	// watched: a notification watch is on it (added, not dropped by the
	// kernel, not in busy mode).
	watched bool
	// local: its file system is one that notifies every local write.
	local bool
	// doubt: after a queue overflow, not trusted before this time.
	doubt time.Time
	due   time.Time // when the poll next stats its files

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
	dirs  []string // filepath.Dir of each path
	ch    chan struct{}
	// last is each path's state at the previous poll; only the poll
	// loop touches it after Add published the subscription.
	last []os.FileInfo
}

// New starts a Watcher. Without file notifications (the OS has none, or
// the per-user limit of inotify instances is reached) it still works, by
// polling alone, and says so in the log.
func New(opts Options) *Watcher {
	return newWatcher(opts, hooks{})
}

func newWatcher(opts Options, h hooks) *Watcher {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.TrustedPollInterval <= 0 {
		opts.TrustedPollInterval = DefaultTrustedPollInterval
	}
	opts.TrustedPollInterval = max(opts.TrustedPollInterval, opts.PollInterval)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if h.stat == nil {
		h.stat = os.Stat
	}
	if h.fsType == nil {
		h.fsType = fsType
	}
	w := &Watcher{
		log:      opts.Logger,
		interval: opts.PollInterval,
		trusted:  opts.TrustedPollInterval,
		hooks:    h,
		start:    time.Now(),
		subs:     map[int]*sub{},
		byPath:   map[string]map[int]*sub{},
		dirs:     map[string]*dir{},
		stop:     make(chan struct{}),
		resched:  make(chan struct{}, 1),
	}
	if !opts.PollOnly {
		notes, err := newNotifier(w.changed, w.lost, w.gone)
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
		s.dirs = append(s.dirs, filepath.Dir(abs))
		fi, _ := w.hooks.stat(abs)
		s.last = append(s.last, fi)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, nil, ErrClosed
	}
	added := false
	for _, name := range s.dirs {
		d := w.dirs[name]
		if d == nil {
			d = w.newDir(name)
			w.dirs[name] = d
			added = true
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
	if added {
		w.reschedule()
	}
	var once sync.Once
	return s.ch, func() { once.Do(func() { w.remove(id) }) }, nil
}

// newDir watches a directory that holds its first subscribed file and
// decides whether its notifications can be trusted. w.mu is held.
func (w *Watcher) newDir(name string) *dir {
	d := &dir{}
	if w.notes == nil {
		d.due = w.align(time.Now(), w.interval)
		return d
	}
	if err := w.notes.add(name); err != nil {
		// Polling still covers this file.
		w.log.Warn("no file-change notifications for a directory; its files are polled", "dir", name, "interval", w.interval, "err", err)
	} else {
		d.watched = true
	}
	t, err := w.hooks.fsType(name)
	d.local = err == nil && trustedFSType(t)
	now := time.Now()
	d.due = w.align(now, w.period(d, now))
	w.log.Debug("watch a directory", "dir", name, "fstype", fmt.Sprintf("%#x", t), "notified", d.watched, "poll", w.period(d, now))
	return d
}

func (w *Watcher) remove(id int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.subs[id]
	if !ok {
		return
	}
	delete(w.subs, id)
	for i, p := range s.paths {
		delete(w.byPath[p], id)
		if len(w.byPath[p]) == 0 {
			delete(w.byPath, p)
		}
		name := s.dirs[i]
		d := w.dirs[name]
		d.paths--
		if d.paths <= 0 {
			delete(w.dirs, name)
			if d.watched && !w.closed {
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

// notifier reports changes in watched directories. Its callbacks are
// made without its own lock held: changed gets the path of a file that
// changed, lost is called when events were dropped, gone when a watch
// ended without remove (the directory was deleted, moved or unmounted, or
// the instance failed).
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
		d.busy, d.watched, d.lastSeen, d.burst = true, false, now, 0
		w.sooner(d, now.Add(busyPoll))
	}
}

// lost tells every subscriber to look: after an overflow some events are
// gone, and any file may have changed. And since the queue overflowed
// once under this load it may again, so no directory's notifications are
// trusted for one trusted interval: all are polled every PollInterval.
func (w *Watcher) lost() {
	w.log.Debug("file notifications overflowed; telling every database to look")
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.subs {
		notify(s)
	}
	now := time.Now()
	for _, d := range w.dirs {
		d.doubt = now.Add(w.trusted)
		w.sooner(d, w.align(now, w.interval))
	}
}

// gone is told that the watch of a directory ended without remove: its
// files are polled every PollInterval from now on, starting at once,
// since whatever ended the watch probably changed them.
func (w *Watcher) gone(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.dirs[name]
	if d == nil || !d.watched || w.closed {
		return
	}
	w.log.Debug("a directory's watch ended; its files are polled", "dir", name, "interval", w.interval)
	d.watched = false
	w.sooner(d, time.Now())
}

// sooner moves d's next poll to at if that is earlier, and has the poll
// loop set its timer again. w.mu is held.
func (w *Watcher) sooner(d *dir, at time.Time) {
	if !at.Before(d.due) {
		return
	}
	d.due = at
	w.reschedule()
}

func (w *Watcher) reschedule() {
	select {
	case w.resched <- struct{}{}:
	default:
	}
}

// align is the first time after now on the grid of period since the
// Watcher started. Every directory's poll falls on its period's grid, so
// directories added at different times are polled together in one
// wake-up rather than each in its own; and the trusted grid is a subset
// of the untrusted one when the intervals are multiples (30 s and 1 s).
func (w *Watcher) align(now time.Time, period time.Duration) time.Time {
	return w.start.Add((now.Sub(w.start)/period + 1) * period)
}

// period is how often d's files are stat'ed. w.mu is held.
func (w *Watcher) period(d *dir, now time.Time) time.Duration {
	switch {
	case d.busy:
		return busyPoll
	case d.watched && d.local && !now.Before(d.doubt):
		return w.trusted
	default:
		return w.interval
	}
}
