package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// racers is the number of goroutines racing conditional puts on one key.
const racers = 16

func testConditional(t *testing.T, h Harness) {
	t.Run("IfAbsent", func(t *testing.T) { testIfAbsent(t, h) })
	t.Run("IfMatch", func(t *testing.T) { testIfMatch(t, h) })
}

func testIfAbsent(t *testing.T, h Harness) {
	ifAbsent := sdk.PutOptions{IfAbsent: true}
	declared := func(name string, fn func(e *env)) {
		leaf(t, h, name, func(e *env) {
			e.disabledUnless(e.caps.IfAbsent, "IfAbsent")
			fn(e)
		})
	}

	declared("Missing", func(e *env) {
		info, err := e.putErr("key", []byte("new"), ifAbsent)
		if err != nil {
			e.t.Fatalf("Put(%q, IfAbsent) of a missing key: %v", "key", err)
		}
		e.wantContent("key", []byte("new"))
		if st := e.stat("key"); st.ETag != info.ETag {
			e.t.Errorf("Stat(%q) after Put(IfAbsent): ETag %q, Put returned %q", "key", st.ETag, info.ETag)
		}
	})

	declared("Exists", func(e *env) {
		old := e.put("key", []byte("old"))
		_, err := e.putErr("key", []byte("new"), ifAbsent)
		e.wantCode(err, sdk.ErrAlreadyExists, "Put(%q, IfAbsent) of an existing key", "key")
		e.wantUnchanged("key", []byte("old"), old)
	})

	declared("AfterDelete", func(e *env) {
		e.put("key", []byte("old"))
		e.del("key")
		if _, err := e.putErr("key", []byte("new"), ifAbsent); err != nil {
			e.t.Fatalf("Put(%q, IfAbsent) of a deleted key: %v", "key", err)
		}
		e.wantContent("key", []byte("new"))
	})

	declared("Concurrent", func(e *env) {
		e.wantOneWinner("key", ifAbsent, sdk.ErrAlreadyExists)
	})

	leaf(t, h, "RejectedIfUndeclared", func(e *env) {
		if e.caps.IfAbsent {
			e.t.Skip("not applicable: store declares capability IfAbsent")
		}
		_, err := e.putErr("missing", []byte("new"), ifAbsent)
		e.wantCode(err, sdk.ErrInvalidArgument, "Put(%q, IfAbsent) of a missing key on a store without IfAbsent", "missing")
		e.wantAbsent("missing")

		old := e.put("key", []byte("old"))
		_, err = e.putErr("key", []byte("new"), ifAbsent)
		e.wantCode(err, sdk.ErrInvalidArgument, "Put(%q, IfAbsent) of an existing key on a store without IfAbsent", "key")
		e.wantUnchanged("key", []byte("old"), old)
	})
}

func testIfMatch(t *testing.T, h Harness) {
	ifMatch := func(etag string) sdk.PutOptions { return sdk.PutOptions{IfMatch: etag} }
	declared := func(name string, fn func(e *env)) {
		leaf(t, h, name, func(e *env) {
			e.disabledUnless(e.caps.IfMatch, "IfMatch")
			fn(e)
		})
	}

	declared("Current", func(e *env) {
		v1 := e.put("key", []byte("v1"))
		v2, err := e.putErr("key", []byte("v2"), ifMatch(v1.ETag))
		if err != nil {
			e.t.Fatalf("Put(%q, IfMatch %q) with the current ETag: %v", "key", v1.ETag, err)
		}
		if v2.ETag == "" || v2.ETag == v1.ETag {
			e.t.Errorf("Put(%q, IfMatch %q) returned ETag %q; want a new one", "key", v1.ETag, v2.ETag)
		}
		e.wantUnchanged("key", []byte("v2"), v2)
		// And again, with the ETag the conditional Put returned.
		v3, err := e.putErr("key", []byte("v3"), ifMatch(v2.ETag))
		if err != nil {
			e.t.Fatalf("Put(%q, IfMatch %q) with the ETag of the last conditional Put: %v", "key", v2.ETag, err)
		}
		e.wantUnchanged("key", []byte("v3"), v3)
	})

	declared("Stale", func(e *env) {
		v1 := e.put("key", []byte("v1"))
		v2 := e.put("key", []byte("v2"))
		_, err := e.putErr("key", []byte("v3"), ifMatch(v1.ETag))
		e.wantCode(err, sdk.ErrPreconditionFailed, "Put(%q, IfMatch %q) with a stale ETag", "key", v1.ETag)
		e.wantUnchanged("key", []byte("v2"), v2)
	})

	declared("Missing", func(e *env) {
		other := e.put("other", []byte("other"))
		_, err := e.putErr("missing", []byte("new"), ifMatch(other.ETag))
		e.wantCode(err, sdk.ErrPreconditionFailed, "Put(%q, IfMatch %q) of a missing key", "missing", other.ETag)
		e.wantAbsent("missing")
	})

	declared("Deleted", func(e *env) {
		v1 := e.put("key", []byte("v1"))
		e.del("key")
		_, err := e.putErr("key", []byte("v2"), ifMatch(v1.ETag))
		e.wantCode(err, sdk.ErrPreconditionFailed, "Put(%q, IfMatch %q) of a deleted key", "key", v1.ETag)
		e.wantAbsent("key")
	})

	declared("Concurrent", func(e *env) {
		v0 := e.put("key", []byte("v0"))
		e.wantOneWinner("key", ifMatch(v0.ETag), sdk.ErrPreconditionFailed)
	})

	leaf(t, h, "RejectedIfUndeclared", func(e *env) {
		if e.caps.IfMatch {
			e.t.Skip("not applicable: store declares capability IfMatch")
		}
		old := e.put("key", []byte("old"))
		_, err := e.putErr("key", []byte("new"), ifMatch(old.ETag))
		e.wantCode(err, sdk.ErrInvalidArgument, "Put(%q, IfMatch %q) with the current ETag on a store without IfMatch", "key", old.ETag)
		e.wantUnchanged("key", []byte("old"), old)

		_, err = e.putErr("missing", []byte("new"), ifMatch(old.ETag))
		e.wantCode(err, sdk.ErrInvalidArgument, "Put(%q, IfMatch %q) of a missing key on a store without IfMatch", "missing", old.ETag)
		e.wantAbsent("missing")
	})
}

// wantUnchanged checks that key holds data with the size and ETag of info.
func (e *env) wantUnchanged(key string, data []byte, info sdk.ObjectInfo) {
	e.t.Helper()
	e.wantContent(key, data)
	if st := e.stat(key); st.ETag != info.ETag || st.Size != int64(len(data)) {
		e.t.Errorf("Stat(%q): ETag %q, Size %d; want %q, %d", key, st.ETag, st.Size, info.ETag, len(data))
	}
}

// wantOneWinner races conditional puts of distinct contents on key, all
// with opts, and checks that exactly one succeeds, the others fail with
// lost, and the winner's content and ETag are what remains.
func (e *env) wantOneWinner(key string, opts sdk.PutOptions, lost error) {
	e.t.Helper()
	content := func(i int) []byte { return fmt.Appendf(nil, "racer %d of %d", i, racers) }
	infos := make([]sdk.ObjectInfo, racers)
	errs := race(racers, func(i int) error {
		var err error
		infos[i], err = e.putRetrying(key, content(i), opts)
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			e.t.Errorf("Put(%q, %+v): racers %d and %d both succeeded; want exactly one", key, opts, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, lost):
			e.t.Errorf("Put(%q, %+v) of racer %d: got error %q (code %q), want success or code %q", key, opts, i, err, sdk.CodeOf(err), sdk.CodeOf(lost))
		}
	}
	if winner < 0 {
		e.t.Fatalf("Put(%q, %+v): none of %d racers succeeded; want exactly one", key, opts, racers)
	}
	e.wantUnchanged(key, content(winner), infos[winner])
}

// putRetrying is a Put retried, as the replicator core does, while it fails
// with a transient error (S3, for one, may refuse one of two concurrent
// conditional writes with a retryable conflict), for up to about 1.5s.
func (e *env) putRetrying(key string, data []byte, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	for attempt := 1; ; attempt++ {
		info, err := e.putErr(key, data, opts)
		if err == nil || !sdk.IsTransient(err) || attempt == 5 {
			return info, err
		}
		select {
		case <-e.ctx.Done():
			return info, err
		case <-time.After(50 * time.Millisecond << attempt):
		}
	}
}
