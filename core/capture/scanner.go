package capture

import (
	"io"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/wal"
)

// idleScanner is a wal.Scanner whose buffer is dropped once it has gone
// unused for idle: a busy database reuses one buffer for all its captures
// instead of growing a new one each time (up to 1 MiB every few
// milliseconds), and a quiet one keeps none. Its methods are safe for
// concurrent use: the dropping runs on a timer.
type idleScanner struct {
	idle time.Duration

	mu    sync.Mutex
	s     wal.Scanner
	timer *time.Timer // drops the buffer after idle; nil until a scan
}

// scanIdle is how long a database keeps its scan buffer unused.
const scanIdle = 2 * time.Second

// Scan is wal.Scan with the kept buffer.
func (i *idleScanner) Scan(r io.ReaderAt, h wal.Header, from wal.Position, fn func(wal.Txn) error) (wal.Position, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.timer == nil {
		i.timer = time.AfterFunc(i.idle, i.drop)
	} else {
		i.timer.Reset(i.idle)
	}
	return i.s.Scan(r, h, from, fn)
}

func (i *idleScanner) drop() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.s = wal.Scanner{}
}

// stop drops the buffer and the timer.
func (i *idleScanner) stop() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.timer != nil {
		i.timer.Stop()
	}
	i.s = wal.Scanner{}
}
