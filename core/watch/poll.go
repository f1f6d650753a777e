package watch

import (
	"os"
	"time"
)

// poll is the one loop that stats subscribed files. Each directory has
// its own next due time (its period after its last poll); one timer is
// set to the earliest, so the process wakes only when some directory's
// poll is due: every busyPoll while a directory is busy, every
// PollInterval while one is untrusted, else every TrustedPollInterval.
func (w *Watcher) poll() {
	defer w.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		w.mu.Lock()
		next, ok := w.nextDue()
		w.mu.Unlock()
		if ok {
			t.Reset(time.Until(next))
		} else {
			t.Stop()
		}
		select {
		case <-w.stop:
			return
		case <-w.resched:
			continue
		case <-t.C:
		}
		if w.hooks.woke != nil {
			w.hooks.woke()
		}
		w.pollDue(time.Now())
	}
}

// nextDue is the earliest due poll of any directory; false when there
// are none. w.mu is held.
func (w *Watcher) nextDue() (time.Time, bool) {
	var next time.Time
	ok := false
	for _, d := range w.dirs {
		if !ok || d.due.Before(next) {
			next, ok = d.due, true
		}
	}
	return next, ok
}

// dueDir is a directory whose poll is due, with the subscriptions that
// have files in it.
type dueDir struct {
	name string
	d    *dir
	subs []*sub
}

// pollDue stats the files of the directories due at now and reports
// those whose size, modification time or identity changed. For busy
// directories it also watches again those quiet for busyQuiet. Then it
// sets each one's next poll.
func (w *Watcher) pollDue(now time.Time) {
	w.mu.Lock()
	var due []*dueDir
	byName := map[string]*dueDir{}
	for name, d := range w.dirs {
		if !now.Before(d.due) {
			dd := &dueDir{name: name, d: d}
			due = append(due, dd)
			byName[name] = dd
		}
	}
	for _, s := range w.subs {
		for _, name := range s.dirs {
			dd := byName[name]
			if dd == nil {
				continue
			}
			if n := len(dd.subs); n == 0 || dd.subs[n-1] != s {
				dd.subs = append(dd.subs, s)
			}
		}
	}
	w.mu.Unlock()
	for _, dd := range due {
		seen := false
		for _, s := range dd.subs {
			if s.changedIn(dd.name, w.hooks.stat) {
				notify(s)
				seen = true
			}
		}
		w.mu.Lock()
		d := dd.d
		if seen {
			d.lastSeen = now
		}
		rearm := d.busy && !w.closed && w.dirs[dd.name] == d && now.Sub(d.lastSeen) >= busyQuiet
		if rearm {
			if err := w.notes.add(dd.name); err != nil {
				w.log.Debug("watch a quiet directory again", "dir", dd.name, "err", err)
				d.lastSeen = now // try again later, polling meanwhile
				rearm = false
			} else {
				d.busy, d.watched, d.lastEvent = false, true, time.Time{}
			}
		}
		after := time.Now()
		d.due = w.align(after, w.period(d, after))
		w.mu.Unlock()
		if rearm {
			// A change between the last stat and the new watch has no
			// event: look once more.
			for _, s := range dd.subs {
				if s.changedIn(dd.name, w.hooks.stat) {
					notify(s)
				}
			}
		}
	}
}

// changedIn stats s's files in the directory name and remembers what it
// saw.
func (s *sub) changedIn(name string, stat func(string) (os.FileInfo, error)) bool {
	changed := false
	for i, p := range s.paths {
		if s.dirs[i] != name {
			continue
		}
		fi, _ := stat(p)
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
