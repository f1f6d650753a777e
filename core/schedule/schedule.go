// Package schedule runs jobs at the times they ask for, for a whole
// process: one goroutine and one timer whatever the number of jobs, so
// that a daemon with a thousand databases has no timer per database that
// wakes it while they are idle. A job that asks for no time costs nothing
// but its entry.
//
// Jobs run on goroutines of their own, at most Workers at once, so that a
// slow job (a compaction against slow storage) delays no other job's
// start beyond that limit, and a burst of due jobs does not run them all
// at once. A job never runs twice concurrently.
package schedule

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// DefaultWorkers is how many jobs run at once when Options.Workers is zero.
const DefaultWorkers = 4

// Options configure a Scheduler.
type Options struct {
	// Workers bounds how many jobs run at once; zero means DefaultWorkers.
	Workers int
}

// Scheduler runs jobs when they are due. Close it when done.
type Scheduler struct {
	// ctx is every job's parent: Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wake   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup // the loop and running jobs

	mu     sync.Mutex
	due    jobHeap
	closed bool
}

// Job is one registered function; At tells when it next runs.
type Job struct {
	s      *Scheduler
	fn     func(context.Context)
	ctx    context.Context
	cancel context.CancelFunc
	runs   sync.WaitGroup

	// Guarded by s.mu.
	at      time.Time // zero: not scheduled
	index   int       // position in s.due; -1 when not in it
	running bool
	removed bool
}

// New starts a scheduler.
func New(opts Options) *Scheduler {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		ctx:    ctx,
		cancel: cancel,
		sem:    make(chan struct{}, opts.Workers),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	s.wg.Add(1)
	go s.loop()
	return s
}

// Add registers fn, not yet scheduled: call At on the job. fn's context
// ends when the job is removed or the scheduler closed. On a closed
// scheduler the job is returned removed: At does nothing.
func (s *Scheduler) Add(fn func(ctx context.Context)) *Job {
	ctx, cancel := context.WithCancel(s.ctx)
	j := &Job{s: s, fn: fn, ctx: ctx, cancel: cancel, index: -1}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		j.removed = true
		cancel()
	}
	return j
}

// At asks for the job to run at t, or at once if t has passed. A job
// already due earlier keeps its earlier time; a job that is running runs
// again at t (or as soon as it ends, if t has passed by then).
func (j *Job) At(t time.Time) {
	s := j.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.removed || (!j.at.IsZero() && !t.Before(j.at)) {
		return
	}
	j.at = t
	if j.running {
		return // queued when the run ends
	}
	s.queue(j)
}

// Scheduled returns when the job is next due; zero if it is not.
func (j *Job) Scheduled() time.Time {
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	return j.at
}

// Remove unregisters the job: it is not run again, and a run in progress
// has its context cancelled and is waited for.
func (j *Job) Remove() {
	s := j.s
	s.mu.Lock()
	j.removed = true
	j.at = time.Time{}
	if j.index >= 0 {
		heap.Remove(&s.due, j.index)
	}
	s.mu.Unlock()
	j.cancel()
	j.runs.Wait()
}

// Close stops the scheduler: no job runs again; those running have their
// contexts cancelled and are waited for.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	close(s.stop)
	s.wg.Wait()
}

// queue puts j, whose time is set, in the due heap and wakes the loop if
// j became the first. s.mu is held.
func (s *Scheduler) queue(j *Job) {
	if j.index >= 0 {
		heap.Fix(&s.due, j.index)
	} else {
		heap.Push(&s.due, j)
	}
	if s.due[0] == j {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// loop starts the jobs that are due and sleeps until the next one is.
func (s *Scheduler) loop() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		for len(s.due) > 0 && !s.due[0].at.After(now) {
			j := heap.Pop(&s.due).(*Job)
			j.at = time.Time{}
			j.running = true
			j.runs.Add(1)
			s.wg.Add(1)
			go s.run(j)
		}
		var next time.Time
		if len(s.due) > 0 {
			next = s.due[0].at
		}
		s.mu.Unlock()
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(next.Sub(now))
		}
		select {
		case <-s.stop:
			timer.Stop()
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// run runs j once a worker is free, then queues it again if it asked to
// run again meanwhile.
func (s *Scheduler) run(j *Job) {
	defer s.wg.Done()
	defer j.runs.Done()
	select {
	case s.sem <- struct{}{}:
		if j.ctx.Err() == nil {
			j.fn(j.ctx)
		}
		<-s.sem
	case <-j.ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j.running = false
	if !j.removed && !s.closed && !j.at.IsZero() {
		s.queue(j)
	}
}

// jobHeap orders jobs by due time, earliest first.
type jobHeap []*Job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(a, b int) bool { return h[a].at.Before(h[b].at) }
func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index, h[b].index = a, b
}
func (h *jobHeap) Push(x any) {
	j := x.(*Job)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*h = old[:len(old)-1]
	return j
}
