package watch

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestWriteFloodCoalesces: a file appended to as fast as possible must cost
// a handful of events per settle period, not one per write; that is what
// keeps a busy application's commits cheap.
func TestWriteFloodCoalesces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db-wal")
	var events, lost atomic.Int64
	n, err := newNotifier(func(p string) {
		if p == path {
			events.Add(1)
		}
	}, func() { lost.Add(1) }, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	if err := n.add(dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const writes = 20000
	start := time.Now()
	for range writes {
		if _, err := f.Write(make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	time.Sleep(3 * settle)
	// Each settle period ends with one read, which can hold a merged
	// event and the one queued after it.
	limit := 2*int64(took/settle) + 4
	if got := events.Load(); got == 0 || got > limit {
		t.Fatalf("%d writes in %v gave %d events; want 1 to %d", writes, took, got, limit)
	}
	if lost.Load() != 0 {
		t.Errorf("lost events reported for %d writes", writes)
	}
}

func TestRemovedDirectoryIsForgotten(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := newNotifier(func(string) {}, func() {}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	if err := n.add(sub); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(notified)
	for n.watching() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a removed directory is still counted as watched")
		}
		time.Sleep(settle)
	}
}

// TestBusyDirectoryIsPolled: a directory whose files change faster than
// notifications pay for is unwatched and polled, changes are still
// reported, and once quiet it is watched again.
func TestBusyDirectoryIsPolled(t *testing.T) {
	dir := t.TempDir()
	w := New(Options{PollInterval: time.Hour}) // only notifications and the busy poll
	defer w.Close()
	if !w.Notifying() {
		t.Skip("no file notifications on this system")
	}
	path := filepath.Join(dir, "db-wal")
	ch, _, err := w.Add(path)
	if err != nil {
		t.Fatal(err)
	}
	writeUntilBusy(t, w, path)
	for got(ch, 0) {
	}
	write(t, path, "y")
	if !got(ch, time.Second) {
		t.Fatal("a change in a busy directory was not reported")
	}
	deadline := time.Now().Add(busyQuiet + notified)
	for w.notes.watching() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a quiet directory was not watched again")
		}
		time.Sleep(busyPoll)
	}
	for got(ch, 0) {
	}
	write(t, path, "z")
	if !got(ch, notified) {
		t.Fatal("a change after the directory was watched again was not reported")
	}
}

// writeUntilBusy writes to path every millisecond until w stops watching
// its directory (busy mode), failing the test if it never does.
func writeUntilBusy(t *testing.T, w *Watcher, path string) {
	t.Helper()
	deadline := time.Now().Add(notified)
	for w.notes.watching() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a directory written to every millisecond stayed watched")
		}
		write(t, path, "x")
		time.Sleep(time.Millisecond)
	}
}
