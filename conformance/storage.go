// Package conformance checks that an sdk.Storage keeps the contract written
// on that interface. A plugin's tests call RunStorageTests with a Harness
// that makes fresh, empty stores of the plugin's backend:
//
//	func TestConformance(t *testing.T) {
//		conformance.RunStorageTests(t, conformance.HarnessFunc(
//			func(ctx context.Context, t *testing.T) (sdk.Storage, error) {
//				return mystore.Open(ctx, map[string]string{"root": t.TempDir()})
//			}))
//	}
//
// Every check is a leaf subtest named Area/Check (Keys has one more level,
// Keys/Awkward/Emoji), and the names are stable so that runs against
// several backends line up in a result matrix. A leaf that needs a
// capability the store does not declare is skipped with a message starting
// "disabled:", for example
//
//	disabled: store does not declare capability IfAbsent
//
// and a leaf that does not apply to the store's declarations (such as the
// check that an undeclared condition is refused, on a store that declares
// it) is skipped with a message starting "not applicable:". Nothing is
// silently passed: the refusal of an undeclared condition is itself tested.
//
// Keys used by the suite are chosen to be acceptable to every reasonable
// backend (S3, GCS, Azure Blob, SFTP, a local file system): no key is a
// path prefix of another key in the same store (a file and a directory of
// one name cannot coexist on a file system), no two keys differ only in
// letter case or Unicode normalisation, and no path segment exceeds 100
// bytes.
package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Harness makes the stores that the suite tests.
type Harness interface {
	// MakeStorage returns a new store for one test. The store must be
	// empty and must not share objects with any other store the harness
	// made (use a fresh bucket prefix or directory per call). The suite
	// closes the store when the test ends; the harness may register its
	// own clean-up with t.Cleanup, which runs after that Close.
	MakeStorage(ctx context.Context, t *testing.T) (sdk.Storage, error)
	// Close releases the harness once all tests have run.
	Close()
}

// HarnessFunc adapts a function to a Harness whose Close does nothing.
type HarnessFunc func(ctx context.Context, t *testing.T) (sdk.Storage, error)

// MakeStorage calls f.
func (f HarnessFunc) MakeStorage(ctx context.Context, t *testing.T) (sdk.Storage, error) {
	return f(ctx, t)
}

// Close does nothing.
func (HarnessFunc) Close() {}

// RunStorageTests runs the storage conformance tests against stores made by
// h, one fresh store per leaf subtest, and closes h at the end.
func RunStorageTests(t *testing.T, h Harness) {
	defer h.Close()
	t.Run("PutGet", func(t *testing.T) { testPutGet(t, h) })
	t.Run("Stat", func(t *testing.T) { testStat(t, h) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, h) })
	t.Run("Range", func(t *testing.T) { testRange(t, h) })
	t.Run("List", func(t *testing.T) { testList(t, h) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, h) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, h) })
	t.Run("Atomic", func(t *testing.T) { testAtomic(t, h) })
	t.Run("Conditional", func(t *testing.T) { testConditional(t, h) })
}

// env is one leaf test with its fresh store.
type env struct {
	t    *testing.T
	ctx  context.Context
	s    sdk.Storage
	caps sdk.Capabilities
}

// leaf runs fn as subtest name of t with a fresh store from h.
func leaf(t *testing.T, h Harness, name string, fn func(e *env)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		ctx := t.Context()
		s, err := h.MakeStorage(ctx, t)
		if err != nil {
			t.Fatalf("harness: MakeStorage: %v", err)
		}
		if s == nil {
			t.Fatalf("harness: MakeStorage returned a nil store and no error")
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		fn(&env{t: t, ctx: ctx, s: s, caps: s.Capabilities()})
	})
}

// disabledUnless skips the test, as disabled, when the store does not
// declare the capability.
func (e *env) disabledUnless(declared bool, capability string) {
	e.t.Helper()
	if !declared {
		e.t.Skipf("disabled: store does not declare capability %s", capability)
	}
}

// plainReader hides every method of the reader but Read, so that a store
// is exercised the way it is over the plugin protocol: with a stream of
// unknown length.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func reader(data []byte) io.Reader { return plainReader{bytes.NewReader(data)} }

// putErr puts data under key and returns Put's result.
func (e *env) putErr(key string, data []byte, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	return e.s.Put(e.ctx, key, reader(data), opts)
}

// put puts data under key, failing the test on error.
func (e *env) put(key string, data []byte) sdk.ObjectInfo {
	e.t.Helper()
	info, err := e.putErr(key, data, sdk.PutOptions{})
	if err != nil {
		e.t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
	return info
}

// readRange returns the bytes of Get(key, offset, length).
func (e *env) readRange(key string, offset, length int64) ([]byte, error) {
	rc, err := e.s.Get(e.ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// get returns the whole object at key, failing the test on error.
func (e *env) get(key string) []byte {
	e.t.Helper()
	data, err := e.readRange(key, 0, -1)
	if err != nil {
		e.t.Fatalf("Get(%q, 0, -1): %v", key, err)
	}
	return data
}

func (e *env) stat(key string) sdk.ObjectInfo {
	e.t.Helper()
	info, err := e.s.Stat(e.ctx, key)
	if err != nil {
		e.t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

func (e *env) del(keys ...string) {
	e.t.Helper()
	if err := e.s.Delete(e.ctx, keys...); err != nil {
		e.t.Fatalf("Delete(%s): %v", describeKeys(keys), err)
	}
}

// list returns what List(prefix, startAfter) reports.
func (e *env) list(prefix, startAfter string) []sdk.ObjectInfo {
	e.t.Helper()
	var infos []sdk.ObjectInfo
	err := e.s.List(e.ctx, prefix, startAfter, func(info sdk.ObjectInfo) error {
		infos = append(infos, info)
		return nil
	})
	if err != nil {
		e.t.Fatalf("List(prefix=%q, startAfter=%q): %v", prefix, startAfter, err)
	}
	return infos
}

func (e *env) listKeys(prefix, startAfter string) []string {
	e.t.Helper()
	infos := e.list(prefix, startAfter)
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

// wantList checks that List(prefix, startAfter) reports exactly want, in
// that order.
func (e *env) wantList(prefix, startAfter string, want []string) {
	e.t.Helper()
	got := e.listKeys(prefix, startAfter)
	if d := diffKeys(got, want); d != "" {
		e.t.Errorf("List(prefix=%q, startAfter=%q) returned %d keys, want %d: %s", prefix, startAfter, len(got), len(want), d)
	}
}

// wantContent checks that key holds exactly want.
func (e *env) wantContent(key string, want []byte) {
	e.t.Helper()
	got, err := e.readRange(key, 0, -1)
	if err != nil {
		e.t.Errorf("Get(%q, 0, -1): %v", key, err)
		return
	}
	if !bytes.Equal(got, want) {
		e.t.Errorf("Get(%q, 0, -1) returned %s, want %s", key, describe(got), describe(want))
	}
}

// wantAbsent checks that key is missing to Stat, Get and List.
func (e *env) wantAbsent(key string) {
	e.t.Helper()
	_, err := e.s.Stat(e.ctx, key)
	e.wantCode(err, sdk.ErrNotFound, "Stat(%q)", key)
	rc, err := e.s.Get(e.ctx, key, 0, -1)
	if err == nil {
		data, rerr := io.ReadAll(rc)
		rc.Close()
		e.t.Errorf("Get(%q, 0, -1) of a missing key succeeded (read %s, %v); want NotFound from Get", key, describe(data), rerr)
	} else {
		e.wantCode(err, sdk.ErrNotFound, "Get(%q, 0, -1)", key)
	}
	if slices.Contains(e.listKeys(key, ""), key) {
		e.t.Errorf("List(prefix=%q) reports the missing key %q", key, key)
	}
}

// wantCode checks that err has the code of target; op is a format for the
// operation, which the message names. It reports whether err matched.
func (e *env) wantCode(err, target error, op string, args ...any) bool {
	e.t.Helper()
	name := fmt.Sprintf(op, args...)
	want := sdk.CodeOf(target)
	switch {
	case err == nil:
		e.t.Errorf("%s: succeeded, want error %q", name, want)
	case !errors.Is(err, target):
		e.t.Errorf("%s: got error %q (code %q), want code %q", name, err, sdk.CodeOf(err), want)
	default:
		return true
	}
	return false
}

// putMany puts data(i) under keys[i] from workers goroutines.
func (e *env) putMany(keys []string, data func(i int) []byte) {
	e.t.Helper()
	errs := parallelN(16, len(keys), func(i int) error {
		if _, err := e.putErr(keys[i], data(i), sdk.PutOptions{}); err != nil {
			return fmt.Errorf("Put(%q): %w", keys[i], err)
		}
		return nil
	})
	e.fatalErrs(errs)
}

// fatalErrs reports up to five non-nil errors and stops the test if there
// were any.
func (e *env) fatalErrs(errs []error) {
	e.t.Helper()
	n := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		if n++; n <= 5 {
			e.t.Error(err)
		}
	}
	if n > 0 {
		e.t.Fatalf("%d of %d operations failed", n, len(errs))
	}
}

// parallelN calls fn(0..n-1) from up to workers goroutines and returns the
// errors by index.
func parallelN(workers, n int, fn func(i int) error) []error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// race calls fn(0..n-1) each from its own goroutine, released together to
// maximise contention, and returns the errors by index.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// randomBytes returns n bytes that depend only on seed: tiles of one
// random block of a prime size, each tile starting with its own number, so
// that no two ranges at different offsets of more than 8 bytes are equal.
// (Generating megabytes of fresh randomness is slow under the race
// detector.)
func randomBytes(seed uint64, n int) []byte {
	const tile = 65521
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	block := make([]byte, tile)
	_, _ = rand.NewChaCha8(s).Read(block)
	b := make([]byte, n)
	for i := 0; i < n; i += tile {
		copy(b[i:], block)
		var num [8]byte
		binary.LittleEndian.PutUint64(num[:], seed<<32^uint64(i/tile))
		copy(b[i:], num[:])
	}
	return b
}

// text returns n bytes of printable, position-dependent data, readable in
// failure messages.
func text(n int) []byte {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[(i+i/len(alphabet))%len(alphabet)]
	}
	return b
}

// shuffled returns a copy of keys in a random order.
func shuffled(keys []string) []string {
	s := slices.Clone(keys)
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// describe summarises data for a failure message.
func describe(data []byte) string {
	if len(data) <= 64 {
		return fmt.Sprintf("%d bytes %q", len(data), data)
	}
	return fmt.Sprintf("%d bytes starting %q", len(data), data[:32])
}

func describeKeys(keys []string) string {
	if len(keys) <= 4 {
		return fmt.Sprintf("%q", keys)
	}
	return fmt.Sprintf("%d keys %q...", len(keys), keys[:4])
}

// diffKeys explains how got differs from want, or returns "".
func diffKeys(got, want []string) string {
	if slices.Equal(got, want) {
		return ""
	}
	var b strings.Builder
	seen := make(map[string]bool, len(got))
	for i, k := range got {
		if seen[k] {
			fmt.Fprintf(&b, "duplicate %q at %d; ", k, i)
		}
		seen[k] = true
	}
	wanted := make(map[string]bool, len(want))
	for _, k := range want {
		wanted[k] = true
		if !seen[k] {
			fmt.Fprintf(&b, "missing %q; ", k)
		}
	}
	for _, k := range got {
		if !wanted[k] {
			fmt.Fprintf(&b, "unexpected %q; ", k)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			fmt.Fprintf(&b, "out of order: %q before %q at %d; ", got[i-1], got[i], i)
			break
		}
	}
	s := b.String()
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	if s == "" {
		s = "same keys, different order"
	}
	return strings.TrimSuffix(s, "; ")
}
