package host

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Open opens a store in the plugin (starting it if needed) and returns a
// Storage that follows the plugin across restarts.
func (p *Plugin) Open(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
	s := &store{p: p, settings: maps.Clone(settings)}
	if _, _, err := s.get(ctx); err != nil {
		return nil, err
	}
	p.release()
	return s, nil
}

// store is an sdk.Storage bound to a Plugin rather than to one process.
// A call that fails because the process died returns a transient error;
// the next call starts the plugin again and re-opens the store.
type store struct {
	p        *Plugin
	settings map[string]string

	mu    sync.Mutex
	cur   sdk.Storage
	epoch uint64
	caps  sdk.Capabilities
}

// get returns the store in the running plugin process, which it holds in
// use: the caller calls done (or s.p.release) when its call is over.
func (s *store) get(ctx context.Context) (sdk.Storage, uint64, error) {
	opener, epoch, err := s.p.current(ctx)
	if err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.epoch == epoch {
		return s.cur, epoch, nil
	}
	st, err := opener.Open(ctx, s.settings)
	if err != nil {
		s.p.release()
		s.p.check(epoch)
		return nil, 0, fmt.Errorf("open %s store: %w", s.p.cfg.Name, err)
	}
	s.cur, s.epoch, s.caps = st, epoch, st.Capabilities()
	return st, epoch, nil
}

// done ends a call begun by get and passes err through, first letting the
// plugin check itself after a transient failure.
func (s *store) done(epoch uint64, err error) error {
	s.p.release()
	if err != nil && sdk.IsTransient(err) {
		s.p.check(epoch)
	}
	return err
}

func (s *store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	st, epoch, err := s.get(ctx)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	info, err := st.Put(ctx, key, r, opts)
	return info, s.done(epoch, err)
}

func (s *store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	st, epoch, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := st.Get(ctx, key, offset, length)
	if err != nil {
		return nil, s.done(epoch, err)
	}
	// The process stays in use while the object streams.
	return &heldReader{ReadCloser: rc, release: s.p.release}, nil
}

// heldReader releases its plugin process when closed.
type heldReader struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *heldReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}

func (s *store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	st, epoch, err := s.get(ctx)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	info, err := st.Stat(ctx, key)
	return info, s.done(epoch, err)
}

func (s *store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	st, epoch, err := s.get(ctx)
	if err != nil {
		return err
	}
	return s.done(epoch, st.List(ctx, prefix, startAfter, fn))
}

func (s *store) Delete(ctx context.Context, keys ...string) error {
	st, epoch, err := s.get(ctx)
	if err != nil {
		return err
	}
	return s.done(epoch, st.Delete(ctx, keys...))
}

// Health reports the plugin's state (see Plugin.Health), so that a caller
// holding only the Storage can tell "restarting" from "the backend failed".
func (s *store) Health() error { return s.p.Health() }

func (s *store) Capabilities() sdk.Capabilities {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps
}

func (s *store) Close() error {
	s.mu.Lock()
	cur, epoch := s.cur, s.epoch
	s.cur = nil
	s.mu.Unlock()
	if cur == nil {
		return nil
	}
	s.p.mu.Lock()
	alive := s.p.client != nil && s.p.epoch == epoch && !s.p.client.Exited()
	s.p.mu.Unlock()
	if !alive {
		return nil
	}
	return cur.Close()
}
