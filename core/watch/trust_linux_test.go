package watch

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// probe watches what a Watcher's poll does: it counts the stats of each
// path and the poll timer's wake-ups, and answers statfs with a file
// system type of the test's choosing.
type probe struct {
	mu    sync.Mutex
	stats map[string]int
	wakes int
	// types is the f_type each directory pretends to have; a directory
	// not in it fails statfs.
	types map[string]uint32
}

func newProbe() *probe {
	return &probe{stats: map[string]int{}, types: map[string]uint32{}}
}

func (p *probe) hooks() hooks {
	return hooks{
		stat: func(path string) (os.FileInfo, error) {
			p.mu.Lock()
			p.stats[path]++
			p.mu.Unlock()
			return os.Stat(path)
		},
		fsType: func(dir string) (uint32, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			t, ok := p.types[dir]
			if !ok {
				return 0, errors.New("no such test file system")
			}
			return t, nil
		},
		woke: func() {
			p.mu.Lock()
			p.wakes++
			p.mu.Unlock()
		},
	}
}

func (p *probe) setType(dir string, t uint32) {
	p.mu.Lock()
	p.types[dir] = t
	p.mu.Unlock()
}

// counts returns how often path was stat'ed and the timer woke so far.
func (p *probe) counts(path string) (stats, wakes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats[path], p.wakes
}

// statsIn is how often path is stat'ed during d.
func (p *probe) statsIn(path string, d time.Duration) int {
	before, _ := p.counts(path)
	time.Sleep(d)
	after, _ := p.counts(path)
	return after - before
}

const nfsSuperMagic = 0x6969

// TestTrustedDirectoriesPollSlowly: files in a directory whose
// notifications are trusted are stat'ed every TrustedPollInterval, not
// every PollInterval, and a Watcher with only such directories does not
// wake between; every other directory is still stat'ed every
// PollInterval.
func TestTrustedDirectoriesPollSlowly(t *testing.T) {
	const window = 400 * time.Millisecond
	cases := []struct {
		name     string
		opts     Options
		fsType   uint32
		noStatfs bool
		// The stats of the file expected in window, and whether the
		// timer may wake at all.
		min, max int
		wakes    bool
	}{
		{
			name:   "ext4 with a watch: no stat within the hour",
			opts:   Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour},
			fsType: unix.EXT4_SUPER_MAGIC,
			min:    0, max: 0,
		},
		{
			name:   "tmpfs with the default trusted interval: no stat within 30s",
			opts:   Options{PollInterval: 10 * time.Millisecond},
			fsType: unix.TMPFS_MAGIC,
			min:    0, max: 0,
		},
		{
			name:   "xfs: stat'ed every trusted interval",
			opts:   Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: 100 * time.Millisecond},
			fsType: unix.XFS_SUPER_MAGIC,
			min:    2, max: 6, wakes: true,
		},
		{
			name:   "NFS: stat'ed every poll interval",
			opts:   Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour},
			fsType: nfsSuperMagic,
			min:    10, max: 1 << 20, wakes: true,
		},
		{
			name:   "FUSE: stat'ed every poll interval",
			opts:   Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour},
			fsType: unix.FUSE_SUPER_MAGIC,
			min:    10, max: 1 << 20, wakes: true,
		},
		{
			name:   "overlayfs: stat'ed every poll interval",
			opts:   Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour},
			fsType: unix.OVERLAYFS_SUPER_MAGIC,
			min:    10, max: 1 << 20, wakes: true,
		},
		{
			name:     "statfs fails: stat'ed every poll interval",
			opts:     Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour},
			noStatfs: true,
			min:      10, max: 1 << 20, wakes: true,
		},
		{
			name:   "ext4 without notifications: stat'ed every poll interval",
			opts:   Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour, PollOnly: true},
			fsType: unix.EXT4_SUPER_MAGIC,
			min:    10, max: 1 << 20, wakes: true,
		},
		{
			name:   "a trusted interval shorter than the poll interval is the poll interval",
			opts:   Options{PollInterval: time.Hour, TrustedPollInterval: 10 * time.Millisecond},
			fsType: unix.EXT4_SUPER_MAGIC,
			min:    0, max: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := newProbe()
			if !c.noStatfs {
				p.setType(dir, c.fsType)
			}
			w := newWatcher(c.opts, p.hooks())
			defer w.Close()
			if !c.opts.PollOnly && !w.Notifying() {
				t.Skip("no file notifications on this system")
			}
			path := filepath.Join(dir, "db-wal")
			write(t, path, "x")
			_, remove, err := w.Add(path)
			if err != nil {
				t.Fatal(err)
			}
			defer remove()
			_, wakes0 := p.counts(path)
			n := p.statsIn(path, window)
			if n < c.min || n > c.max {
				t.Errorf("stat'ed %d times in %v, want %d to %d", n, window, c.min, c.max)
			}
			if _, wakes := p.counts(path); !c.wakes && wakes != wakes0 {
				t.Errorf("the poll timer woke %d times with only trusted directories", wakes-wakes0)
			}
		})
	}
}

// TestMixedDirectories: one Watcher, one timer, a trusted and an
// untrusted directory: each is polled at its own interval.
func TestMixedDirectories(t *testing.T) {
	p := newProbe()
	trusted, untrusted := t.TempDir(), t.TempDir()
	p.setType(trusted, unix.BTRFS_SUPER_MAGIC)
	p.setType(untrusted, nfsSuperMagic)
	w := notifyingWatcher(t, Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour}, p)
	a, b := filepath.Join(trusted, "a.db"), filepath.Join(untrusted, "b.db")
	if _, _, err := w.Add(a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Add(b); err != nil {
		t.Fatal(err)
	}
	a0, _ := p.counts(a)
	if n := p.statsIn(b, 300*time.Millisecond); n < 10 {
		t.Errorf("the untrusted directory's file was stat'ed %d times in 300ms, want every 10ms", n)
	}
	if a1, _ := p.counts(a); a1 != a0 {
		t.Errorf("the trusted directory's file was stat'ed %d times", a1-a0)
	}
}

// TestTrustedChangeIsNotifiedAtOnce: in a trusted directory a change is
// reported by its notification, with no poll at all.
func TestTrustedChangeIsNotifiedAtOnce(t *testing.T) {
	dir := t.TempDir()
	p := newProbe()
	p.setType(dir, unix.EXT4_SUPER_MAGIC)
	w := notifyingWatcher(t, Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour}, p)
	path := filepath.Join(dir, "db-wal")
	ch, _, err := w.Add(path)
	if err != nil {
		t.Fatal(err)
	}
	before, wakes := p.counts(path)
	for i := range 3 {
		write(t, path, "x")
		if !got(ch, notified) {
			t.Fatalf("write %d was not notified", i)
		}
		time.Sleep(busyGap) // not a burst: stays out of busy mode
	}
	if after, woke := p.counts(path); after != before || woke != wakes {
		t.Errorf("the poll ran (%d stats, %d wake-ups) for changes notifications reported", after-before, woke-wakes)
	}
}

// TestDistrust: whatever makes a directory's notifications unreliable
// makes its files polled every PollInterval at once.
func TestDistrust(t *testing.T) {
	cases := []struct {
		name string
		// distrust acts on the watcher and the watched directory sub.
		distrust func(t *testing.T, w *Watcher, sub string)
	}{
		{
			name:     "a queue overflow",
			distrust: func(t *testing.T, w *Watcher, _ string) { w.lost() },
		},
		{
			name: "the directory deleted",
			distrust: func(t *testing.T, _ *Watcher, sub string) {
				if err := os.RemoveAll(sub); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "the directory moved away and replaced",
			distrust: func(t *testing.T, _ *Watcher, sub string) {
				if err := os.Rename(sub, sub+".old"); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "busy mode",
			distrust: func(t *testing.T, w *Watcher, sub string) {
				writeUntilBusy(t, w, filepath.Join(sub, "db-wal"))
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := filepath.Join(t.TempDir(), "sub")
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			p := newProbe()
			p.setType(sub, unix.EXT4_SUPER_MAGIC)
			w := notifyingWatcher(t, Options{PollInterval: 20 * time.Millisecond, TrustedPollInterval: time.Hour}, p)
			path := filepath.Join(sub, "db-wal")
			if _, _, err := w.Add(path); err != nil {
				t.Fatal(err)
			}
			if n := p.statsIn(path, 100*time.Millisecond); n != 0 {
				t.Fatalf("stat'ed %d times while trusted", n)
			}
			c.distrust(t, w, sub)
			if n := p.statsIn(path, 300*time.Millisecond); n < 5 {
				t.Errorf("stat'ed %d times in 300ms after %s, want every 20ms", n, c.name)
			}
		})
	}
}

// TestTrustReturnsAfterOverflow: an overflow distrusts notifications for
// one trusted interval, then the directory is polled slowly again.
func TestTrustReturnsAfterOverflow(t *testing.T) {
	dir := t.TempDir()
	p := newProbe()
	p.setType(dir, unix.EXT4_SUPER_MAGIC)
	const trusted = 300 * time.Millisecond
	w := notifyingWatcher(t, Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: trusted}, p)
	path := filepath.Join(dir, "db-wal")
	if _, _, err := w.Add(path); err != nil {
		t.Fatal(err)
	}
	w.lost()
	if n := p.statsIn(path, trusted/2); n < 5 {
		t.Errorf("stat'ed %d times in %v after an overflow, want every 10ms", n, trusted/2)
	}
	time.Sleep(trusted)
	if n := p.statsIn(path, 3*trusted); n > 4 {
		t.Errorf("stat'ed %d times in %v once the overflow was past, want about 3", n, 3*trusted)
	}
}

// TestSameDirectoryTwice: one directory under two paths has one watch,
// whose events name the first path, so the second is not trusted.
func TestSameDirectoryTwice(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Skip("no symbolic links:", err)
	}
	p := newProbe()
	p.setType(dir, unix.EXT4_SUPER_MAGIC)
	p.setType(link, unix.EXT4_SUPER_MAGIC)
	w := notifyingWatcher(t, Options{PollInterval: 10 * time.Millisecond, TrustedPollInterval: time.Hour}, p)
	if _, _, err := w.Add(filepath.Join(dir, "a.db")); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(link, "b.db")
	ch, _, err := w.Add(b)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.statsIn(b, 200*time.Millisecond); n < 5 {
		t.Errorf("a file of a directory watched under another path was stat'ed %d times in 200ms, want every 10ms", n)
	}
	write(t, b, "x")
	if !got(ch, notified) {
		t.Error("a change through the second path was not seen")
	}
}

// TestPollsShareWakeUps: directories added at different times are
// polled in the same wake-ups, so many databases cost the process one
// wake-up per interval, not one each.
func TestPollsShareWakeUps(t *testing.T) {
	const (
		dirs     = 5
		interval = 50 * time.Millisecond
		window   = 500 * time.Millisecond
	)
	p := newProbe()
	w := newWatcher(Options{PollInterval: interval, PollOnly: true}, p.hooks())
	defer w.Close()
	var paths []string
	for range dirs {
		path := filepath.Join(t.TempDir(), "db-wal")
		if _, _, err := w.Add(path); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
		time.Sleep(interval / dirs)
	}
	stats0, wakes0 := p.counts(paths[0])
	time.Sleep(window)
	stats1, wakes1 := p.counts(paths[0])
	if stats1-stats0 < 5 {
		t.Fatalf("stat'ed %d times in %v, want every %v", stats1-stats0, window, interval)
	}
	// One wake-up per interval, and some slack for a late timer.
	if limit := int(window/interval) + 3; wakes1-wakes0 > limit {
		t.Errorf("%d directories woke the poll %d times in %v, want at most %d", dirs, wakes1-wakes0, window, limit)
	}
}

// notifyingWatcher starts a watcher with the probe's hooks, closed when
// the test ends; it skips the test where the system has no file
// notifications, which every caller needs.
func notifyingWatcher(t *testing.T, opts Options, p *probe) *Watcher {
	t.Helper()
	w := newWatcher(opts, p.hooks())
	t.Cleanup(func() { w.Close() })
	if !w.Notifying() {
		t.Skip("no file notifications on this system")
	}
	return w
}
