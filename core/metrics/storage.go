package metrics

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Storage operations, the "operation" label of the storage request
// metrics: one per sdk.Storage method that reaches the backend.
const (
	OpPut    = "put"
	OpGet    = "get"
	OpStat   = "stat"
	OpList   = "list"
	OpDelete = "delete"
)

// ResultNotFound is the result of a request for a key that does not exist:
// routine (a lease not taken yet, a cache miss), so it is kept apart from
// errors.
const ResultNotFound = "not_found"

// storageMetrics are the counters behind Registry.Storage.
type storageMetrics struct {
	requests *counterVec
	bytes    *counterVec
}

func newStorageMetrics() *storageMetrics {
	return &storageMetrics{
		requests: newCounterVec("replicator_storage_requests_total",
			"Requests to a replica's storage, by operation (put, get, stat, list, delete) and result (ok, not_found, error); each retry counts.",
			"db", "replica", "operation", "result"),
		bytes: newCounterVec("replicator_storage_bytes_total",
			"Bytes sent to (put) and received from (get) a replica's storage.",
			"db", "replica", "operation"),
	}
}

// Storage returns st with every request counted under db and replica. It
// counts what reaches the backend, retries included, where the upload
// metrics count what the daemon meant to do. On a nil Registry it returns
// st itself.
func (r *Registry) Storage(db, replica string, st sdk.Storage) sdk.Storage {
	if r == nil {
		return st
	}
	return &countedStorage{Storage: st, m: r.storage, db: db, replica: replica}
}

type countedStorage struct {
	sdk.Storage
	m           *storageMetrics
	db, replica string
}

func (s *countedStorage) count(op string, err error) {
	res := ResultOK
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		res = ResultNotFound
	case err != nil:
		res = ResultError
	}
	s.m.requests.inc(s.db, s.replica, op, res)
}

func (s *countedStorage) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	cr := &countingReader{r: r}
	info, err := s.Storage.Put(ctx, key, cr, opts)
	s.count(OpPut, err)
	s.m.bytes.add(float64(cr.n.Load()), s.db, s.replica, OpPut)
	return info, err
}

func (s *countedStorage) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.Storage.Get(ctx, key, offset, length)
	s.count(OpGet, err)
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{ReadCloser: rc, add: func(n float64) { s.m.bytes.add(n, s.db, s.replica, OpGet) }}, nil
}

func (s *countedStorage) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	info, err := s.Storage.Stat(ctx, key)
	s.count(OpStat, err)
	return info, err
}

func (s *countedStorage) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	err := s.Storage.List(ctx, prefix, startAfter, fn)
	s.count(OpList, err)
	return err
}

func (s *countedStorage) Delete(ctx context.Context, keys ...string) error {
	err := s.Storage.Delete(ctx, keys...)
	s.count(OpDelete, err)
	return err
}

// Health passes on the wrapped store's own state (a plugin restarting), so
// that wrapping a store does not hide it from /healthz.
func (s *countedStorage) Health() error {
	if h, ok := s.Storage.(interface{ Health() error }); ok {
		return h.Health()
	}
	return nil
}

// countingReader counts the bytes read through it; a Put may read from
// another goroutine, hence the atomic.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingReadCloser adds the bytes read through it to a counter as they
// are read, so that a download in progress shows in the metrics.
type countingReadCloser struct {
	io.ReadCloser
	add func(float64)
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		c.add(float64(n))
	}
	return n, err
}
