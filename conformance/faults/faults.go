// Package faults wraps an sdk.Storage so that its calls fail, stall or
// break off the way a flaky network and a struggling backend make them do.
// It is a testing hook: the replication scenarios of package conformance
// start the daemon with the environment variable Env set, and the daemon
// wraps every replica's store with Wrap, so the same faults reach every
// backend, including a local directory that has no network to disturb.
//
// A spec is a comma-separated list of KEY=VALUE:
//
//	error=0.2     fail 20% of calls with a transient (Unavailable) error
//	              before they reach the store
//	drop=0.1      break off 10% of calls midway, as a dropped connection
//	              does: a Put reads part of its data and fails (nothing
//	              lands), or lands and then loses its reply; a Get's reader
//	              fails partway; a List stops after some objects; a Delete
//	              deletes and then loses its reply
//	latency=50ms  delay each call by a random time up to 50ms
//	seed=7        the random seed (default: random), for reproducible runs
//
// Faults are transient by construction (the error code is Unavailable), so
// a correct client retries and loses nothing.
package faults

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Env is the environment variable that carries a spec to the daemon.
const Env = "REPLICATOR_FAULTS"

// Spec is a parsed fault spec.
type Spec struct {
	Error   float64       // probability that a call fails before the store sees it
	Drop    float64       // probability that a call breaks off midway
	Latency time.Duration // maximum added delay per call
	Seed    uint64
	HasSeed bool
}

// Parse reads a spec such as "error=0.2,drop=0.05,latency=20ms".
func Parse(s string) (Spec, error) {
	var sp Spec
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Spec{}, fmt.Errorf("%s: %q is not KEY=VALUE (keys: error, drop, latency, seed)", Env, part)
		}
		var err error
		switch k {
		case "error":
			sp.Error, err = probability(v)
		case "drop":
			sp.Drop, err = probability(v)
		case "latency":
			sp.Latency, err = time.ParseDuration(v)
			if err == nil && sp.Latency < 0 {
				err = fmt.Errorf("negative")
			}
		case "seed":
			sp.Seed, err = strconv.ParseUint(v, 10, 64)
			sp.HasSeed = true
		default:
			return Spec{}, fmt.Errorf("%s: unknown key %q (keys: error, drop, latency, seed)", Env, k)
		}
		if err != nil {
			return Spec{}, fmt.Errorf("%s: bad value for %s: %q (%v)", Env, k, v, err)
		}
	}
	if sp.Error+sp.Drop > 1 {
		return Spec{}, fmt.Errorf("%s: error and drop add up to more than 1", Env)
	}
	return sp, nil
}

func probability(v string) (float64, error) {
	p, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	if p < 0 || p > 1 {
		return 0, fmt.Errorf("want a probability between 0 and 1")
	}
	return p, nil
}

// String formats the spec as Parse reads it.
func (sp Spec) String() string {
	parts := []string{}
	if sp.Error > 0 {
		parts = append(parts, "error="+strconv.FormatFloat(sp.Error, 'g', -1, 64))
	}
	if sp.Drop > 0 {
		parts = append(parts, "drop="+strconv.FormatFloat(sp.Drop, 'g', -1, 64))
	}
	if sp.Latency > 0 {
		parts = append(parts, "latency="+sp.Latency.String())
	}
	if sp.HasSeed {
		parts = append(parts, "seed="+strconv.FormatUint(sp.Seed, 10))
	}
	return strings.Join(parts, ",")
}

// Counts says how many faults a Store injected.
type Counts struct {
	Calls, Errors, Drops int
}

// Store is an sdk.Storage that injects the faults of its spec into the
// calls it passes on.
type Store struct {
	st      sdk.Storage
	sp      Spec
	onFault func(error)

	mu     sync.Mutex
	rnd    *rand.Rand
	counts Counts
}

// Wrap returns st with the faults of sp injected. onFault, when not nil,
// is told of every fault as it is injected (so that a log shows that the
// faults happened, also when the client retried them away).
func Wrap(st sdk.Storage, sp Spec, onFault func(error)) *Store {
	seed := sp.Seed
	if !sp.HasSeed {
		seed = rand.Uint64()
	}
	return &Store{st: st, sp: sp, onFault: onFault, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Counts returns how many calls the store passed on and how many faults
// it injected.
func (s *Store) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

type fault int

const (
	none fault = iota
	failBefore
	dropMidway
)

// roll decides the fate of one call and waits out its latency.
func (s *Store) roll(ctx context.Context) (fault, float64, error) {
	s.mu.Lock()
	s.counts.Calls++
	p := s.rnd.Float64()
	frac := s.rnd.Float64()
	var delay time.Duration
	if s.sp.Latency > 0 {
		delay = time.Duration(s.rnd.Int64N(int64(s.sp.Latency) + 1))
	}
	f := none
	switch {
	case p < s.sp.Error:
		f = failBefore
		s.counts.Errors++
	case p < s.sp.Error+s.sp.Drop:
		f = dropMidway
		s.counts.Drops++
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return none, 0, ctx.Err()
		case <-t.C:
		}
	}
	return f, frac, nil
}

// injected returns the error of a fault, and reports it.
func (s *Store) injected(op, key, what string) error {
	err := sdk.Errorf(sdk.Unavailable, "injected fault: %s %q: %s", op, key, what)
	if s.onFault != nil {
		s.onFault(err)
	}
	return err
}

// Put passes the call on, or fails it before it starts, or breaks it off:
// half of the drops cut the data short (nothing lands), the other half
// let the Put land and lose its reply.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	f, frac, err := s.roll(ctx)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	switch {
	case f == failBefore:
		return sdk.ObjectInfo{}, s.injected("put", key, "connection refused")
	case f == dropMidway && frac < 0.5:
		// The reader fails after some bytes; a correct store leaves
		// nothing behind.
		cut := &cutReader{r: r, left: int64(frac * 2 * (64 << 10)), err: s.injected("put", key, "connection reset while sending")}
		if _, err := s.st.Put(ctx, key, cut, opts); err != nil {
			return sdk.ObjectInfo{}, s.injected("put", key, "connection reset while sending")
		}
		// The whole object was shorter than the cut: it landed.
		return sdk.ObjectInfo{}, s.injected("put", key, "connection reset before the reply")
	case f == dropMidway:
		if _, err := s.st.Put(ctx, key, r, opts); err != nil {
			return sdk.ObjectInfo{}, err
		}
		return sdk.ObjectInfo{}, s.injected("put", key, "connection reset before the reply")
	}
	return s.st.Put(ctx, key, r, opts)
}

// Get passes the call on, or fails it, or returns a reader that breaks
// off partway.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	f, frac, err := s.roll(ctx)
	if err != nil {
		return nil, err
	}
	if f == failBefore {
		return nil, s.injected("get", key, "connection refused")
	}
	rc, err := s.st.Get(ctx, key, offset, length)
	if err != nil || f == none {
		return rc, err
	}
	return readCloser{&cutReader{r: rc, left: int64(frac * (64 << 10)), err: s.injected("get", key, "connection reset while receiving")}, rc}, nil
}

// Stat passes the call on or fails it.
func (s *Store) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	f, _, err := s.roll(ctx)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	if f != none {
		return sdk.ObjectInfo{}, s.injected("stat", key, "connection reset")
	}
	return s.st.Stat(ctx, key)
}

// List passes the call on, or fails it, or stops it after some objects.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	f, frac, err := s.roll(ctx)
	if err != nil {
		return err
	}
	switch f {
	case failBefore:
		return s.injected("list", prefix, "connection refused")
	case dropMidway:
		left := int(frac * 20)
		errCut := s.injected("list", prefix, "connection reset while listing")
		err := s.st.List(ctx, prefix, startAfter, func(info sdk.ObjectInfo) error {
			if left == 0 {
				return errCut
			}
			left--
			return fn(info)
		})
		if err == nil {
			return errCut
		}
		return err
	}
	return s.st.List(ctx, prefix, startAfter, fn)
}

// Delete passes the call on, or fails it, or deletes and loses the reply.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	f, _, err := s.roll(ctx)
	if err != nil {
		return err
	}
	first := ""
	if len(keys) > 0 {
		first = keys[0]
	}
	switch f {
	case failBefore:
		return s.injected("delete", first, "connection refused")
	case dropMidway:
		if err := s.st.Delete(ctx, keys...); err != nil {
			return err
		}
		return s.injected("delete", first, "connection reset before the reply")
	}
	return s.st.Delete(ctx, keys...)
}

// Capabilities are the wrapped store's.
func (s *Store) Capabilities() sdk.Capabilities { return s.st.Capabilities() }

// Close closes the wrapped store.
func (s *Store) Close() error { return s.st.Close() }

// Health passes on the wrapped store's state (a plugin restarting).
func (s *Store) Health() error {
	if h, ok := s.st.(interface{ Health() error }); ok {
		return h.Health()
	}
	return nil
}

// cutReader reads at most left bytes from r, then fails with err.
type cutReader struct {
	r    io.Reader
	left int64
	err  error
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}
