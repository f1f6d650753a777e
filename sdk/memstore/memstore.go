// Package memstore is an in-memory sdk.Storage for tests: of the
// replicator core, which can run against it without a plugin process, and
// of the conformance suite itself, which must pass against it.
//
// It follows the sdk.Storage contract to the letter and is meant to stay
// small. Objects are immutable byte slices replaced whole under a mutex, so
// a Put is atomic, a reader returned by Get keeps seeing the version it
// opened, and conditional puts are decided and committed in one critical
// section. ETags are hex counters, unique within a Store.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Store is an in-memory sdk.Storage. The zero value is not usable; call New.
type Store struct {
	caps sdk.Capabilities

	mu     sync.RWMutex
	objs   map[string]*object
	seq    uint64 // last ETag issued
	closed bool
}

// object is one stored version; it is never modified once stored.
type object struct {
	data []byte
	etag string
	mod  time.Time
}

var _ sdk.Storage = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithCapabilities makes the Store declare caps instead of the default
// (IfAbsent and IfMatch, no MaxObjectSize). The Store honours exactly what
// it declares: a condition it does not declare is InvalidArgument, and
// MaxObjectSize, when set, is enforced.
func WithCapabilities(caps sdk.Capabilities) Option {
	return func(s *Store) { s.caps = caps }
}

// New returns an empty Store. By default it declares IfAbsent and IfMatch.
func New(opts ...Option) *Store {
	s := &Store{
		caps: sdk.Capabilities{IfAbsent: true, IfMatch: true},
		objs: make(map[string]*object),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Capabilities implements sdk.Storage.
func (s *Store) Capabilities() sdk.Capabilities { return s.caps }

// Close implements sdk.Storage. Calls made after Close fail; readers
// already returned by Get keep working. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.objs = nil
	return nil
}

func errClosed(op, key string) error {
	return sdk.Errorf(sdk.Unknown, "memstore: %s %q: store is closed", op, key)
}

// start checks what every call checks first: the context, the key and
// that the store is open. It does not lock; callers check closed again
// under the lock.
func (s *Store) start(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s %q: %w", op, key, err)
	}
	if err := sdk.ValidateKey(key); err != nil {
		return sdk.Errorf(sdk.InvalidArgument, "memstore: %s: %w", op, err)
	}
	return nil
}

// Put implements sdk.Storage. The data is read whole before anything is
// stored, so a failing reader or a cancelled ctx leaves the store as it was.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	if err := s.start(ctx, "put", key); err != nil {
		return sdk.ObjectInfo{}, err
	}
	switch {
	case opts.IfAbsent && !s.caps.IfAbsent:
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "memstore: put %q: IfAbsent is not a declared capability", key)
	case opts.IfMatch != "" && !s.caps.IfMatch:
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "memstore: put %q: IfMatch is not a declared capability", key)
	case opts.IfAbsent && opts.IfMatch != "":
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "memstore: put %q: IfAbsent and IfMatch together can never succeed", key)
	}

	src := io.Reader(&ctxReader{ctx: ctx, r: r})
	limit := s.caps.MaxObjectSize
	if limit > 0 {
		src = io.LimitReader(src, limit+1)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(src); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("memstore: put %q: reading data: %w", key, err)
	}
	if limit > 0 && int64(buf.Len()) > limit {
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.InvalidArgument, "memstore: put %q: object is larger than MaxObjectSize (%d bytes)", key, limit)
	}
	// The reader may have hit EOF just as ctx was cancelled; a cancelled
	// Put must not commit.
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("memstore: put %q: %w", key, err)
	}
	data := bytes.Clone(buf.Bytes()) // exact size; buf may be much larger
	if data == nil {
		data = []byte{}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sdk.ObjectInfo{}, errClosed("put", key)
	}
	old := s.objs[key]
	switch {
	case opts.IfAbsent && old != nil:
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.AlreadyExists, "memstore: put %q: key exists", key)
	case opts.IfMatch != "" && old == nil:
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.PreconditionFailed, "memstore: put %q: IfMatch %q: key does not exist", key, opts.IfMatch)
	case opts.IfMatch != "" && old.etag != opts.IfMatch:
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.PreconditionFailed, "memstore: put %q: IfMatch %q: current ETag is %q", key, opts.IfMatch, old.etag)
	}
	s.seq++
	obj := &object{data: data, etag: fmt.Sprintf("%016x", s.seq), mod: time.Now()}
	s.objs[key] = obj
	return obj.info(key), nil
}

// Get implements sdk.Storage. The reader serves the version current at the
// time of the call, even if the key is replaced or deleted meanwhile.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := s.start(ctx, "get", key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "memstore: get %q: negative offset %d", key, offset)
	}
	obj, err := s.lookup("get", key)
	if err != nil {
		return nil, err
	}
	data := obj.data
	start := min(offset, int64(len(data)))
	end := int64(len(data))
	if length >= 0 && length < end-start {
		end = start + length
	}
	return io.NopCloser(&ctxReader{ctx: ctx, r: bytes.NewReader(data[start:end])}), nil
}

// Stat implements sdk.Storage.
func (s *Store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	if err := s.start(ctx, "stat", key); err != nil {
		return sdk.ObjectInfo{}, err
	}
	obj, err := s.lookup("stat", key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	return obj.info(key), nil
}

func (s *Store) lookup(op, key string) (*object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed(op, key)
	}
	obj := s.objs[key]
	if obj == nil {
		return nil, sdk.Errorf(sdk.NotFound, "memstore: %s %q: not found", op, key)
	}
	return obj, nil
}

// List implements sdk.Storage. It takes a snapshot of the matching keys and
// calls fn without holding the lock, so fn may call the Store.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: list %q: %w", prefix, err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed("list", prefix)
	}
	var infos []sdk.ObjectInfo
	for k, obj := range s.objs {
		if strings.HasPrefix(k, prefix) && (startAfter == "" || k > startAfter) {
			infos = append(infos, obj.info(k))
		}
	}
	s.mu.RUnlock()

	slices.SortFunc(infos, func(a, b sdk.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore: list %q: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements sdk.Storage. All keys are validated before any is
// deleted; missing keys are ignored.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if err := s.start(ctx, "delete", k); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed("delete", strings.Join(keys, ", "))
	}
	for _, k := range keys {
		delete(s.objs, k)
	}
	return nil
}

func (o *object) info(key string) sdk.ObjectInfo {
	return sdk.ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, ModTime: o.mod}
}

// ctxReader fails once ctx is done, so a long Put or Get stops promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
