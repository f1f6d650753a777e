package metrics

import "sync"

// sources are the state functions a collector reads at every scrape, so
// that gauges such as lag keep moving while nothing happens.
type sources[T any] struct {
	mu   sync.Mutex
	next int
	fns  map[int]func() T
}

// add registers fn; the returned function removes it.
func (s *sources[T]) add(fn func() T) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fns == nil {
		s.fns = map[int]func() T{}
	}
	id := s.next
	s.next++
	s.fns[id] = fn
	return func() {
		s.mu.Lock()
		delete(s.fns, id)
		s.mu.Unlock()
	}
}

// all returns the registered functions, to call without the lock held.
func (s *sources[T]) all() []func() T {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]func() T, 0, len(s.fns))
	for _, fn := range s.fns {
		out = append(out, fn)
	}
	return out
}
