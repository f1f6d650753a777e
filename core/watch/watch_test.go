package watch

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	// notified is how long a test waits for a change it expects.
	notified = 5 * time.Second
	// quiet is how long a test waits to be sure nothing is reported.
	quiet = 300 * time.Millisecond
)

func write(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// got waits up to d for a value on ch.
func got(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestWatcher(t *testing.T) {
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	cases := []struct {
		name string
		opts Options
		// setup prepares the directory before the subscription to
		// "a" (and "b") is taken; change acts after it.
		setup  func(t *testing.T, dir string)
		change func(t *testing.T, dir string)
		want   bool
	}{
		{
			name:   "a write is notified at once, long before the poll",
			opts:   Options{PollInterval: time.Hour},
			setup:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "x") },
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "y") },
			want:   true,
		},
		{
			name:   "a file created after the subscription is notified",
			opts:   Options{PollInterval: time.Hour},
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "x") },
			want:   true,
		},
		{
			name:   "another file of the same directory is not reported",
			opts:   Options{PollInterval: 50 * time.Millisecond},
			setup:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "x") },
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "c"), "y") },
			want:   false,
		},
		{
			name:   "without notifications, the poll sees a write",
			opts:   Options{PollInterval: 50 * time.Millisecond, PollOnly: true},
			setup:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "x") },
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "y") },
			want:   true,
		},
		{
			name:   "without notifications and without a poll due, nothing is seen",
			opts:   Options{PollInterval: time.Hour, PollOnly: true},
			setup:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "x") },
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "y") },
			want:   false,
		},
		{
			name: "the poll sees a same-size rewrite by its modification time",
			opts: Options{PollInterval: 50 * time.Millisecond, PollOnly: true},
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "a"), "x")
				touch(t, filepath.Join(dir, "a"), old)
			},
			change: func(t *testing.T, dir string) {
				touch(t, filepath.Join(dir, "a"), old.Add(time.Second))
			},
			want: true,
		},
		{
			name: "the poll sees a file replaced by another of the same size and time",
			opts: Options{PollInterval: 50 * time.Millisecond, PollOnly: true},
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "a"), "x")
				touch(t, filepath.Join(dir, "a"), old)
			},
			change: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "new"), "x")
				touch(t, filepath.Join(dir, "new"), old)
				if err := os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "a")); err != nil {
					t.Fatal(err)
				}
			},
			want: true,
		},
		{
			name:   "the poll sees a removal",
			opts:   Options{PollInterval: 50 * time.Millisecond, PollOnly: true},
			setup:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "x") },
			change: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "a")) },
			want:   true,
		},
		{
			name:   "an idle file is never reported",
			opts:   Options{PollInterval: 20 * time.Millisecond},
			setup:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a"), "x") },
			change: func(*testing.T, string) {},
			want:   false,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.setup != nil {
				c.setup(t, dir)
			}
			w := New(c.opts)
			defer w.Close()
			ch, remove, err := w.Add(filepath.Join(dir, "a"), filepath.Join(dir, "b"))
			if err != nil {
				t.Fatal(err)
			}
			defer remove()
			c.change(t, dir)
			wait := quiet
			if c.want {
				wait = notified
			}
			if g := got(ch, wait); g != c.want {
				t.Errorf("notified = %v, want %v", g, c.want)
			}
		})
	}
}

func touch(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// TestSharedDirectory checks the bookkeeping of one directory watched for
// several subscriptions: removing one leaves the other notified, and the
// last removal drops the directory's watch.
func TestSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	w := New(Options{PollInterval: time.Hour})
	defer w.Close()
	if !w.Notifying() {
		t.Skip("no file notifications on this system")
	}
	ch1, remove1, err := w.Add(filepath.Join(dir, "one"))
	if err != nil {
		t.Fatal(err)
	}
	ch2, remove2, err := w.Add(filepath.Join(dir, "two"))
	if err != nil {
		t.Fatal(err)
	}
	if n := w.notes.watching(); n != 1 {
		t.Fatalf("%d directories watched, want 1", n)
	}
	remove1()
	remove1() // a second call does nothing
	write(t, filepath.Join(dir, "one"), "x")
	write(t, filepath.Join(dir, "two"), "x")
	if !got(ch2, notified) {
		t.Error("the remaining subscription was not notified")
	}
	if got(ch1, quiet) {
		t.Error("a removed subscription was notified")
	}
	remove2()
	if n := w.notes.watching(); n != 0 {
		t.Errorf("%d directories still watched after the last removal", n)
	}
}

// TestOverflowTellsEveryone: after lost events every subscriber must
// look, since any of them may have changed; other errors tell no one.
func TestOverflowTellsEveryone(t *testing.T) {
	dir := t.TempDir()
	w := New(Options{PollInterval: time.Hour})
	defer w.Close()
	ch1, _, _ := w.Add(filepath.Join(dir, "one"))
	ch2, _, _ := w.Add(filepath.Join(dir, "two"))
	w.lost()
	if !got(ch1, notified) || !got(ch2, notified) {
		t.Error("an overflow did not notify every subscriber")
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	w := New(Options{PollInterval: 10 * time.Millisecond})
	ch, remove, err := w.Add(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	remove() // after Close: harmless
	write(t, filepath.Join(dir, "a"), "x")
	if got(ch, quiet) {
		t.Error("notified after Close")
	}
	if _, _, err := w.Add(filepath.Join(dir, "b")); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
}
