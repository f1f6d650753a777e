package sdk

import (
	"context"
	"io"
	"time"
)

// Storage is what a storage plugin implements: a small object store with
// keys that are slash-separated UTF-8 paths (see ValidateKey) and values
// that are written whole and never modified in place.
//
// The replicator core builds everything else (retries, checksums, key
// layout, caching) on top of these few operations, so a plugin should do no
// more than they say. Every method may be called concurrently. Errors should
// carry a Code (see Errorf); a plain error is treated as Unknown, which the
// core does not retry. Errors from the standard library that mean "not
// found", "exists" or "permission" are recognised without wrapping.
//
// A Storage is safe to use only until Close.
type Storage interface {
	// Put stores the bytes of r under key, replacing any existing object.
	//
	// Atomic: readers see the old object or the new one whole, never a part.
	// If r returns an error, ctx is cancelled, or Put fails in any other
	// way, nothing new is visible under key (and no temporary objects are
	// left visible to List). With opts.IfAbsent, Put fails with
	// AlreadyExists when key exists; with opts.IfMatch, it fails with
	// PreconditionFailed unless key exists with that ETag. Conditions are
	// honoured only when the matching capability is declared; a store that
	// lacks it returns InvalidArgument rather than ignoring the condition.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error)

	// Get returns a reader of length bytes of the object at key starting at
	// offset; a negative length reads to the end. A range that extends past
	// the end is cut short (an offset at or past the end yields no bytes),
	// never an error. A missing key is NotFound, reported by Get itself, not
	// by the first Read. The caller closes the reader.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the object's info, or NotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List calls fn for every object whose key starts with prefix and sorts
	// strictly after startAfter (when it is not empty), in ascending byte
	// order of keys, across as many backend pages as there are. It stops
	// and returns fn's error when fn returns one. Listing is not a snapshot:
	// objects put or deleted during a listing may or may not appear.
	List(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error

	// Delete removes the objects at keys. Keys that do not exist are not an
	// error, so Delete is idempotent and safe to retry. It may delete some
	// keys and then fail; the caller retries.
	Delete(ctx context.Context, keys ...string) error

	// Capabilities reports what the store supports beyond the base contract.
	// It is fixed for the life of the Storage.
	Capabilities() Capabilities

	// Close releases the store's resources. Pending calls may fail.
	Close() error
}

// OpenFunc configures a Storage from backend-specific settings (what a user
// wrote under a replica in the config file, or the query of a replica URL).
// It validates them and should check that the store is reachable, so a bad
// configuration fails at start-up with an error that names the setting.
type OpenFunc func(ctx context.Context, settings map[string]string) (Storage, error)

// PutOptions are the conditions of a Put.
type PutOptions struct {
	// IfAbsent makes the Put fail with AlreadyExists when the key exists.
	IfAbsent bool
	// IfMatch, when not empty, makes the Put fail with PreconditionFailed
	// unless the key exists and its ETag equals IfMatch.
	IfMatch string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ETag is opaque; it changes whenever the object is replaced.
	ETag    string
	ModTime time.Time
}

// Capabilities are declared by a store, never sniffed: the core and the
// conformance suite decide what to use and test from them.
type Capabilities struct {
	// IfAbsent: Put honours PutOptions.IfAbsent atomically.
	IfAbsent bool
	// IfMatch: Put honours PutOptions.IfMatch atomically.
	IfMatch bool
	// MaxObjectSize is the largest object Put accepts; 0 means no limit.
	MaxObjectSize int64
}
