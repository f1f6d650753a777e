package replica

import (
	"context"
	"io"
	"strings"

	"github.com/sqlitereplicator/replicator/sdk"
)

// WithPrefix returns st with every key under prefix + "/": the databases of
// a directory entry share one store (and one plugin) but each keeps its
// own generations, listings and lease.
func WithPrefix(st sdk.Storage, prefix string) (sdk.Storage, error) {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return st, nil
	}
	if err := sdk.ValidateKey(prefix); err != nil {
		return nil, err
	}
	return &prefixed{Storage: st, p: prefix + "/"}, nil
}

type prefixed struct {
	sdk.Storage
	p string
}

func (s *prefixed) strip(oi sdk.ObjectInfo) sdk.ObjectInfo {
	oi.Key = strings.TrimPrefix(oi.Key, s.p)
	return oi
}

func (s *prefixed) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	oi, err := s.Storage.Put(ctx, s.p+key, r, opts)
	return s.strip(oi), err
}

func (s *prefixed) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return s.Storage.Get(ctx, s.p+key, offset, length)
}

func (s *prefixed) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	oi, err := s.Storage.Stat(ctx, s.p+key)
	return s.strip(oi), err
}

func (s *prefixed) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if startAfter != "" {
		startAfter = s.p + startAfter
	}
	return s.Storage.List(ctx, s.p+prefix, startAfter, func(oi sdk.ObjectInfo) error {
		return fn(s.strip(oi))
	})
}

// Health passes on the wrapped store's state (a plugin restarting), which
// /healthz reports.
func (s *prefixed) Health() error {
	if h, ok := s.Storage.(interface{ Health() error }); ok {
		return h.Health()
	}
	return nil
}

func (s *prefixed) Delete(ctx context.Context, keys ...string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.p + k
	}
	return s.Storage.Delete(ctx, full...)
}
