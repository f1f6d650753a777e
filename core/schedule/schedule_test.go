package schedule

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOrder checks that jobs run at their times, earliest first, and that
// an earlier At wins over a later one while a later one changes nothing.
func TestOrder(t *testing.T) {
	t.Parallel()
	s := New(Options{Workers: 1})
	defer s.Close()
	var mu sync.Mutex
	var got []string
	done := make(chan struct{}, 3)
	add := func(name string) *Job {
		return s.Add(func(context.Context) {
			mu.Lock()
			got = append(got, name)
			mu.Unlock()
			done <- struct{}{}
		})
	}
	now := time.Now()
	a, b, c := add("a"), add("b"), add("c")
	a.At(now.Add(150 * time.Millisecond))
	b.At(now.Add(400 * time.Millisecond))
	b.At(now.Add(50 * time.Millisecond)) // earlier: wins
	c.At(now.Add(100 * time.Millisecond))
	c.At(now.Add(time.Hour)) // later: ignored
	if w := c.Scheduled(); !w.Equal(now.Add(100 * time.Millisecond)) {
		t.Fatalf("c scheduled at %v, want the earlier time", w)
	}
	for range 3 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a job did not run")
		}
	}
	if el := time.Since(now); el < 150*time.Millisecond {
		t.Fatalf("all ran after %v, before the last was due", el)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "bca"; join(got) != want {
		t.Fatalf("ran %q, want %q", join(got), want)
	}
	if !a.Scheduled().IsZero() {
		t.Fatal("a job that ran is still scheduled")
	}
}

func join(s []string) string {
	var out string
	for _, x := range s {
		out += x
	}
	return out
}

// TestRerunAndIdle checks that At during a run runs the job again after
// it, never concurrently, and that a job nobody schedules never runs.
func TestRerunAndIdle(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	defer s.Close()
	var runs, inside, overlap atomic.Int32
	var j *Job
	j = s.Add(func(context.Context) {
		if inside.Add(1) > 1 {
			overlap.Add(1)
		}
		defer inside.Add(-1)
		if runs.Add(1) == 1 {
			j.At(time.Now()) // asks again while running
			time.Sleep(30 * time.Millisecond)
		}
	})
	idle := s.Add(func(context.Context) { t.Error("an unscheduled job ran") })
	defer idle.Remove()
	j.At(time.Now())
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs, want 2", n)
	}
	if overlap.Load() != 0 {
		t.Fatal("the job ran twice at once")
	}
}

// TestStop checks that Remove and Close cancel a running job and wait for
// it, and that a removed job's At does nothing.
func TestStop(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		stop func(s *Scheduler, j *Job)
	}{
		{"remove", func(_ *Scheduler, j *Job) { j.Remove() }},
		{"close", func(s *Scheduler, _ *Job) { s.Close() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := New(Options{})
			defer s.Close()
			started, ended := make(chan struct{}), atomic.Bool{}
			var runs atomic.Int32
			j := s.Add(func(ctx context.Context) {
				runs.Add(1)
				close(started)
				<-ctx.Done()
				time.Sleep(20 * time.Millisecond)
				ended.Store(true)
			})
			j.At(time.Now())
			<-started
			c.stop(s, j)
			if !ended.Load() {
				t.Fatal("returned before the running job ended")
			}
			j.At(time.Now())
			time.Sleep(50 * time.Millisecond)
			if n := runs.Load(); n != 1 {
				t.Fatalf("%d runs, want 1: the job ran after it was stopped", n)
			}
		})
	}
}

// TestWorkers checks that no more than Workers jobs run at once, and that
// every due job still runs.
func TestWorkers(t *testing.T) {
	t.Parallel()
	const workers, jobs = 2, 10
	s := New(Options{Workers: workers})
	defer s.Close()
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	wg.Add(jobs)
	for range jobs {
		s.Add(func(context.Context) {
			defer wg.Done()
			n := inside.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
			inside.Add(-1)
		}).At(time.Now())
	}
	wg.Wait()
	if m := most.Load(); m != workers {
		t.Fatalf("at most %d jobs ran at once, want %d", m, workers)
	}
}

// TestAddAfterClose checks that a job added to a closed scheduler never
// runs and that its At does not block or panic.
func TestAddAfterClose(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	s.Close()
	j := s.Add(func(context.Context) { t.Error("a job of a closed scheduler ran") })
	j.At(time.Now())
	time.Sleep(20 * time.Millisecond)
	j.Remove()
}
