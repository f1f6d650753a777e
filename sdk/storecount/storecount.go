// Package storecount wraps an sdk.Storage and counts the requests made
// through it, by operation.
//
// It exists for tests and benchmarks that must know exactly how many
// requests the replicator sends: an idle database that should cost none,
// a lease renewal that may cost one conditional write, the requests per
// hour of a steady load. Nothing outside the client can count them
// exactly — a Stat or a ranged Get leaves no trace in the replica — so
// the count is taken on the client's side of the Storage interface, the
// one place every request passes. Capabilities and Close are not
// requests to the store and are not counted.
package storecount

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/sqlitereplicator/replicator/sdk"
)

// The operation names of Counts, one per request method of sdk.Storage.
const (
	Put    = "put"
	Get    = "get"
	Stat   = "stat"
	List   = "list"
	Delete = "delete"
)

// Store is an sdk.Storage that passes every call to the one it wraps and
// counts it first, whether or not it then fails: a failed request was
// still sent. It is safe for concurrent use, as the wrapped Storage is.
// Create one with New.
type Store struct {
	sdk.Storage
	put, get, stat, list, del atomic.Int64
}

// New returns st wrapped so that its requests are counted from zero.
func New(st sdk.Storage) *Store {
	return &Store{Storage: st}
}

// Put counts a put and stores r under key in the wrapped Storage.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	s.put.Add(1)
	return s.Storage.Put(ctx, key, r, opts)
}

// Get counts a get and reads key from the wrapped Storage.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	s.get.Add(1)
	return s.Storage.Get(ctx, key, offset, length)
}

// Stat counts a stat and asks the wrapped Storage for key's info.
func (s *Store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	s.stat.Add(1)
	return s.Storage.Stat(ctx, key)
}

// List counts one list, however many objects or backend pages it yields,
// and lists the wrapped Storage.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	s.list.Add(1)
	return s.Storage.List(ctx, prefix, startAfter, fn)
}

// Delete counts one delete, however many keys it names, and deletes them
// from the wrapped Storage.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	s.del.Add(1)
	return s.Storage.Delete(ctx, keys...)
}

// Counts returns the requests made so far, by operation name; every
// operation is present, zero or not. Each count is read atomically, but
// requests in flight during the call may be in some counts and not yet in
// others.
func (s *Store) Counts() Counts {
	return Counts{
		Put:    s.put.Load(),
		Get:    s.get.Load(),
		Stat:   s.stat.Load(),
		List:   s.list.Load(),
		Delete: s.del.Load(),
	}
}

// Total returns the requests made so far, of every operation.
func (s *Store) Total() int64 {
	return s.Counts().Total()
}

// Counts are request counts by operation name (Put, Get, Stat, List,
// Delete), taken at one moment.
type Counts map[string]int64

// Total returns the sum of the counts.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Sub returns the requests made between earlier and c, by operation:
// what a window of a test or benchmark cost.
func (c Counts) Sub(earlier Counts) Counts {
	out := make(Counts, len(c))
	for op, n := range c {
		out[op] = n - earlier[op]
	}
	return out
}
