// Package replica is the one concrete client of a replica: it wraps any
// sdk.Storage (a plugin) and owns the key layout, retries, and verification
// of every object read, so that plugins stay small.
//
// Layout under the replica's storage:
//
//	lease
//	generations/<gen>/snapshots/<txid:016x>.snapshot
//	generations/<gen>/segments/<level>/<min:016x>-<max:016x>.segment
package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/sdk"
)

// Replica is a replica location.
type Replica struct {
	Name string
	st   sdk.Storage
	log  *slog.Logger
	// Retries is how many times a transient failure is retried.
	Retries int
	// Keys, when set, turns on client-side encryption: Upload encrypts
	// plaintext objects with Keys.Primary(), and Download (and whoever
	// reads what it downloaded, through Keys) opens objects sealed with
	// any of them. Downloaded files stay as stored, encrypted. nil
	// uploads plaintext and reads only plaintext objects.
	Keys *crypt.Keyring
}

// ReaderOptions returns the options that open this replica's objects.
func (r *Replica) ReaderOptions() segment.ReaderOptions {
	return segment.ReaderOptions{Keys: r.Keys}
}

// New returns a Replica over st.
func New(name string, st sdk.Storage, log *slog.Logger) *Replica {
	if log == nil {
		log = slog.Default()
	}
	return &Replica{Name: name, st: st, log: log.With("replica", name), Retries: 8}
}

// Storage returns the underlying storage.
func (r *Replica) Storage() sdk.Storage { return r.st }

// Object is a snapshot or segment in the replica.
type Object struct {
	Generation string
	// Level is the compaction level of a segment, -1 for a snapshot.
	Level    int
	Min, Max uint64
	Key      string
	Size     int64
}

// Snapshot reports whether o is a snapshot.
func (o Object) Snapshot() bool { return o.Level < 0 }

func (o Object) String() string {
	if o.Snapshot() {
		return fmt.Sprintf("snapshot %s/%d", o.Generation, o.Min)
	}
	return fmt.Sprintf("segment %s/L%d/%d-%d", o.Generation, o.Level, o.Min, o.Max)
}

// Key returns the storage key of an object.
func Key(o Object) (string, error) {
	if o.Snapshot() {
		return segment.SnapshotKey(o.Generation, o.Min)
	}
	return segment.SegmentKey(o.Generation, o.Level, o.Min, o.Max)
}

// retry runs op until it succeeds, fails permanently, or the retries run
// out, backing off exponentially with jitter.
func (r *Replica) retry(ctx context.Context, what string, op func() error) error {
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || !sdk.IsTransient(err) || attempt >= r.Retries || ctx.Err() != nil {
			return err
		}
		r.log.Debug("retrying after a transient error", "op", what, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay/2 + rand.N(delay)):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// Generations lists the generations in the replica, oldest first.
func (r *Replica) Generations(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var gens []string
	err := r.retry(ctx, "list generations", func() error {
		return r.st.List(ctx, "generations/", "", func(oi sdk.ObjectInfo) error {
			rest := strings.TrimPrefix(oi.Key, "generations/")
			gen, _, ok := strings.Cut(rest, "/")
			if ok && !seen[gen] && segment.ValidateGeneration(gen) == nil {
				seen[gen] = true
				gens = append(gens, gen)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list generations in %s: %w", r.Name, err)
	}
	sort.Strings(gens)
	return gens, nil
}

// Objects lists the snapshots and segments of generation gen, ordered by
// Min, then snapshots first, then higher levels first.
func (r *Replica) Objects(ctx context.Context, gen string) ([]Object, error) {
	return r.ObjectsAfter(ctx, gen, "")
}

// ObjectsAfter lists the objects of gen whose keys sort after startAfter.
func (r *Replica) ObjectsAfter(ctx context.Context, gen, startAfter string) ([]Object, error) {
	prefix := "generations/" + gen + "/"
	var objs []Object
	err := r.retry(ctx, "list objects", func() error {
		objs = objs[:0]
		return r.st.List(ctx, prefix, startAfter, func(oi sdk.ObjectInfo) error {
			if o, ok := parseKey(gen, strings.TrimPrefix(oi.Key, prefix)); ok {
				o.Key, o.Size = oi.Key, oi.Size
				objs = append(objs, o)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list generation %s in %s: %w", gen, r.Name, err)
	}
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if a.Min != b.Min {
			return a.Min < b.Min
		}
		if a.Level != b.Level {
			return a.Level < b.Level
		}
		return a.Max > b.Max
	})
	return objs, nil
}

func parseKey(gen, rest string) (Object, bool) {
	if name, ok := strings.CutPrefix(rest, "snapshots/"); ok {
		txid, err := segment.ParseSnapshotName(name)
		return Object{Generation: gen, Level: -1, Min: txid, Max: txid}, err == nil
	}
	if lv, ok := strings.CutPrefix(rest, "segments/"); ok {
		l, name, ok := strings.Cut(lv, "/")
		level, err := strconv.Atoi(l)
		if !ok || err != nil || level < 0 || level > segment.MaxLevel {
			return Object{}, false
		}
		min, max, err := segment.ParseSegmentName(name)
		return Object{Generation: gen, Level: level, Min: min, Max: max}, err == nil
	}
	return Object{}, false
}

// Upload stores the object read from the local file path, retrying
// transient failures with a fresh read each time. With Keys set, a
// plaintext file is encrypted on the way (a new salt on every attempt); a
// file that is already encrypted (compaction's output) is stored as it is.
func (r *Replica) Upload(ctx context.Context, o Object, path string) error {
	key, err := Key(o)
	if err != nil {
		return err
	}
	return r.retry(ctx, "upload", func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		encrypt, err := r.needsSealing(f)
		if err != nil {
			return fmt.Errorf("upload %s to %s: %w", key, r.Name, err)
		}
		if encrypt {
			err = r.putSealed(ctx, key, f)
		} else {
			_, err = r.st.Put(ctx, key, f, sdk.PutOptions{})
		}
		if err != nil {
			return fmt.Errorf("upload %s to %s: %w", key, r.Name, err)
		}
		return nil
	})
}

// needsSealing reports whether the object in f is plaintext and must be
// encrypted before it is stored, and rewinds f.
func (r *Replica) needsSealing(f *os.File) (bool, error) {
	if r.Keys.Primary() == nil {
		return false, nil
	}
	h, err := segment.ReadHeader(f)
	if err != nil {
		return false, fmt.Errorf("read local header: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	return h.Encryption == segment.EncryptionNone, nil
}

// putSealed stores the plaintext object in src encrypted under the primary
// key, streaming (the object is never whole in memory or on disk) and
// without compressing it again (segment.Seal).
func (r *Replica) putSealed(ctx context.Context, key string, src io.Reader) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := segment.Seal(pw, src, r.Keys.Primary())
		pw.CloseWithError(err)
		done <- err
	}()
	_, err := r.st.Put(ctx, key, pr, sdk.PutOptions{})
	// Unblocks the encoder if Put stopped reading early.
	pr.CloseWithError(errors.New("upload ended"))
	if encErr := <-done; encErr != nil && err == nil {
		// Put succeeded with what it read, yet encoding failed: cannot
		// happen with a conforming store (the pipe reported the error),
		// but never report success for an object that was not whole.
		err = fmt.Errorf("encrypting: %w", encErr)
	}
	return err
}

// Download copies object o into w, verifying it completely (trailer
// checksum, page order, header; the seal of an encrypted object) before
// returning its header. A corrupted or truncated object is an error
// wrapping segment.ErrCorrupt; an encrypted one without its key in Keys,
// crypt.ErrKeyRequired or crypt.ErrWrongKey. w receives the object as
// stored: read it with ReaderOptions.
func (r *Replica) Download(ctx context.Context, o Object, w io.WriterAt) (segment.Header, error) {
	var hdr segment.Header
	err := r.retry(ctx, "download", func() error {
		rc, err := r.st.Get(ctx, o.Key, 0, -1)
		if err != nil {
			return fmt.Errorf("download %s from %s: %w", o.Key, r.Name, err)
		}
		defer rc.Close()
		hdr, err = copyObject(rc, w, r.ReaderOptions())
		if err != nil {
			return fmt.Errorf("download %s from %s: %w", o.Key, r.Name, err)
		}
		return nil
	})
	if err != nil {
		return segment.Header{}, err
	}
	if err := checkHeader(o, hdr); err != nil {
		return segment.Header{}, err
	}
	return hdr, nil
}

func copyObject(rc io.Reader, w io.WriterAt, opts segment.ReaderOptions) (segment.Header, error) {
	var off int64
	buf := make([]byte, 1<<20)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.WriteAt(buf[:n], off); werr != nil {
				return segment.Header{}, werr
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return segment.Header{}, err
		}
	}
	return segment.VerifyOptions(io.NewSectionReader(readerAt{w}, 0, off), opts)
}

// readerAt reads back what was written, when the writer can.
type readerAt struct{ w io.WriterAt }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	ra, ok := r.w.(io.ReaderAt)
	if !ok {
		return 0, errors.New("download target cannot be read back for verification")
	}
	return ra.ReadAt(p, off)
}

// checkHeader makes sure an object says what its name says.
func checkHeader(o Object, h segment.Header) error {
	wantKind := segment.KindSegment
	if o.Snapshot() {
		wantKind = segment.KindSnapshot
	}
	if h.Kind != wantKind || h.Generation != o.Generation || h.MinTXID != o.Min || h.MaxTXID != o.Max {
		return fmt.Errorf("%w: %s holds %s %s/%d-%d", segment.ErrCorrupt, o.Key, h.Kind, h.Generation, h.MinTXID, h.MaxTXID)
	}
	return nil
}

// ReadHeader fetches just the header of object o.
func (r *Replica) ReadHeader(ctx context.Context, o Object) (segment.Header, error) {
	var hdr segment.Header
	err := r.retry(ctx, "read header", func() error {
		rc, err := r.st.Get(ctx, o.Key, 0, segment.HeaderSize)
		if err != nil {
			return fmt.Errorf("read header of %s from %s: %w", o.Key, r.Name, err)
		}
		defer rc.Close()
		hdr, err = segment.ReadHeader(rc)
		if err != nil {
			return fmt.Errorf("read header of %s from %s: %w", o.Key, r.Name, err)
		}
		return nil
	})
	if err != nil {
		return segment.Header{}, err
	}
	return hdr, checkHeader(o, hdr)
}

// Delete removes objects.
func (r *Replica) Delete(ctx context.Context, objs ...Object) error {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return r.retry(ctx, "delete", func() error { return r.st.Delete(ctx, keys...) })
}
