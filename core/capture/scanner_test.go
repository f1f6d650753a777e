package capture_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
)

// TestScanBufferDroppedWhenQuiet: a capture keeps its WAL scan buffer
// while the database is written to and drops it once quiet.
func TestScanBufferDroppedWhenQuiet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db := app(t, path)
	c, _ := open(t, path)
	capture.SetScanIdle(c, 100*time.Millisecond)
	for range 3 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(5000))")
		step(t, c)
		if !capture.ScanBufferKept(c) {
			t.Fatal("no scan buffer kept right after a capture")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for capture.ScanBufferKept(c) {
		if time.Now().After(deadline) {
			t.Fatal("the scan buffer was still kept 5s after the last capture")
		}
		time.Sleep(20 * time.Millisecond)
	}
	exec1(t, db, "INSERT INTO t (v) VALUES (1)")
	step(t, c)
	assertSame(t, c, path)
}
