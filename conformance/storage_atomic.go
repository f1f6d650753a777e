package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Sizes for the failed puts: large enough that a store streams the data
// before the failure, which comes a quarter of the way in.
const (
	failSize = 2 << 20
	failAt   = failSize / 4
)

// errInjected is what a failing reader returns.
var errInjected = errors.New("conformance: injected reader failure")

// streamReader serves data in chunks of at most 64 KiB. When it has served
// at bytes, it calls onAt once; if err is set it then fails with err instead
// of serving more. It is safe for use by several goroutines, so a store
// that reads on after Put returned trips the race detector in the store,
// not here.
type streamReader struct {
	mu   sync.Mutex
	data []byte
	off  int
	at   int
	onAt func()
	err  error
}

func (r *streamReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off >= r.at {
		if r.onAt != nil {
			r.onAt()
			r.onAt = nil
		}
		if r.err != nil {
			return 0, r.err
		}
	}
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	end := min(len(r.data), r.off+len(p), r.off+64<<10)
	if r.off < r.at {
		end = min(end, r.at)
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

func testAtomic(t *testing.T, h Harness) {
	// A Put whose ctx is cancelled mid-stream must fail and leave nothing.
	// The reader goes on serving data, so only the cancellation can stop it.
	cancelled := func(e *env, key string) error {
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		r := &streamReader{data: randomBytes(4, failSize), at: failAt, onAt: cancel}
		_, err := e.s.Put(ctx, key, r, sdk.PutOptions{})
		if err == nil {
			e.t.Errorf("Put(%q) whose context was cancelled after %d of %d bytes succeeded, want an error", key, failAt, failSize)
		}
		return err
	}
	failing := func(err error, at int) func(e *env, key string) error {
		return func(e *env, key string) error {
			r := &streamReader{data: randomBytes(5, failSize), at: at, err: err}
			_, perr := e.s.Put(e.ctx, key, r, sdk.PutOptions{})
			if perr == nil {
				e.t.Errorf("Put(%q) whose reader failed with %q after %d of %d bytes succeeded, want an error", key, err, at, failSize)
			}
			return perr
		}
	}
	for _, tc := range []struct {
		name string
		put  func(e *env, key string) error
	}{
		{"Cancelled", cancelled},
		{"ReaderError", failing(errInjected, failAt)},
		{"ReaderErrorAtEnd", failing(errInjected, failSize)},
		// A truncated stream (an HTTP body cut short, say) is reported
		// as io.ErrUnexpectedEOF, which must not pass for the end.
		{"ReaderUnexpectedEOF", failing(io.ErrUnexpectedEOF, failAt)},
	} {
		leaf(t, h, tc.name+"New", func(e *env) {
			err := tc.put(e, "atomic/new")
			if err != nil {
				e.t.Logf("Put(%q) failed, as it should, with: %v", "atomic/new", err)
			}
			e.wantAbsent("atomic/new")
			e.wantList("", "", nil)
		})
		leaf(t, h, tc.name+"Overwrite", func(e *env) {
			old := text(1000)
			info := e.put("atomic/old", old)
			err := tc.put(e, "atomic/old")
			if err != nil {
				e.t.Logf("Put(%q) failed, as it should, with: %v", "atomic/old", err)
			}
			e.wantContent("atomic/old", old)
			if st := e.stat("atomic/old"); st.ETag != info.ETag || st.Size != info.Size {
				e.t.Errorf("Stat(%q) after a failed overwrite: ETag %q, Size %d; want the old %q, %d", "atomic/old", st.ETag, st.Size, info.ETag, info.Size)
			}
			e.wantList("", "", []string{"atomic/old"})
		})
	}

	// A reader opened before an overwrite or a delete reads the old object
	// whole, or fails; never a mix.
	for _, tc := range []struct {
		name   string
		change func(e *env, key string)
	}{
		{"ReadDuringOverwrite", func(e *env, key string) { e.put(key, randomBytes(7, 4<<20)) }},
		{"ReadDuringDelete", func(e *env, key string) { e.del(key) }},
	} {
		leaf(t, h, tc.name, func(e *env) {
			const key = "atomic/read"
			old := randomBytes(6, 4<<20)
			e.put(key, old)
			rc, err := e.s.Get(e.ctx, key, 0, -1)
			if err != nil {
				e.t.Fatalf("Get(%q, 0, -1): %v", key, err)
			}
			defer rc.Close()
			head := make([]byte, 1024)
			if _, err := io.ReadFull(rc, head); err != nil {
				e.t.Fatalf("Get(%q, 0, -1): first read: %v", key, err)
			}
			tc.change(e, key)
			rest, err := io.ReadAll(rc)
			if err != nil {
				e.t.Logf("Get(%q, 0, -1) opened before the change failed after it (allowed): %v", key, err)
				return
			}
			if got := append(head, rest...); !bytes.Equal(got, old) {
				e.t.Errorf("Get(%q, 0, -1) opened before the change returned %d bytes that are not the old object (%d bytes)", key, len(got), len(old))
			}
		})
	}

	leaf(t, h, "ConcurrentKeys", func(e *env) {
		keys := make([]string, 128)
		for i := range keys {
			keys[i] = fmt.Sprintf("conc/%02d/%03d", i%16, i)
		}
		content := func(i int) []byte { return randomBytes(uint64(100+i), 10000+i) }
		e.putMany(keys, content)
		for i, k := range keys {
			e.wantContent(k, content(i))
		}
		e.wantList("", "", slices.Sorted(slices.Values(keys)))
	})

	// Writers race on one key while readers check that every read is one
	// whole version.
	leaf(t, h, "ConcurrentSameKey", func(e *env) {
		const key, writers, size = "conc/same", 16, 64 << 10
		version := func(i int) []byte { return bytes.Repeat([]byte{byte('A' + i)}, size) }
		e.put(key, version(writers)) // readers find something from the start

		var done atomic.Bool
		var mu sync.Mutex
		var readErrs []error
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for n := 0; !done.Load() || n == 0; n++ {
					got, err := e.readRange(key, 0, -1)
					if err == nil {
						err = checkVersion(got, size, writers)
					}
					if err != nil {
						mu.Lock()
						readErrs = append(readErrs, fmt.Errorf("Get(%q, 0, -1) during concurrent puts: %w", key, err))
						mu.Unlock()
						return
					}
				}
			})
		}
		// A backend may throttle writes to one object (GCS allows about
		// one a second): a put that still fails transiently after retries
		// is lost, but must not show.
		infos := make([]sdk.ObjectInfo, writers)
		lost := make([]bool, writers)
		errs := race(writers, func(i int) error {
			var err error
			infos[i], err = e.putRetrying(key, version(i), sdk.PutOptions{})
			if sdk.IsTransient(err) {
				e.t.Logf("Put(%q) #%d of %d concurrent puts failed transiently (allowed): %v", key, i, writers, err)
				lost[i] = true
				return nil
			}
			if err != nil {
				return fmt.Errorf("Put(%q) #%d of %d concurrent puts: %w", key, i, writers, err)
			}
			return nil
		})
		done.Store(true)
		wg.Wait()
		e.fatalErrs(append(errs, readErrs...))

		got := e.get(key)
		if err := checkVersion(got, size, writers); err != nil {
			e.t.Fatalf("Get(%q, 0, -1) after concurrent puts: %v", key, err)
		}
		winner := int(got[0] - 'A')
		if winner >= writers {
			e.t.Fatalf("Get(%q, 0, -1) after concurrent puts returned the version from before them", key)
		}
		if lost[winner] {
			e.t.Fatalf("Get(%q, 0, -1) after concurrent puts returned the content of put #%d, which failed", key, winner)
		}
		if st := e.stat(key); st.ETag != infos[winner].ETag {
			e.t.Errorf("Stat(%q) after concurrent puts: ETag %q, but the Put whose content is there returned %q", key, st.ETag, infos[winner].ETag)
		}
	})
}

// checkVersion checks that data is one whole version of ConcurrentSameKey:
// size bytes, all of them 'A'+i for one i <= maxVersion.
func checkVersion(data []byte, size, maxVersion int) error {
	if len(data) != size {
		return fmt.Errorf("got %d bytes, want %d: a partial object", len(data), size)
	}
	c := data[0]
	if c < 'A' || int(c-'A') > maxVersion {
		return fmt.Errorf("got byte %q, which no put wrote", c)
	}
	for i, b := range data {
		if b != c {
			return fmt.Errorf("got a mix of versions: byte %d is %q, byte 0 is %q", i, b, c)
		}
	}
	return nil
}
