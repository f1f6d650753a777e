package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

const (
	testPartSize = 5 << 20
	bigSize      = 12<<20 + 4321 // three parts of testPartSize
)

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// hookReader serves data; when it has served at bytes it calls hook once,
// then (if err is set) fails with err.
type hookReader struct {
	mu   sync.Mutex
	data []byte
	off  int
	at   int
	hook func()
	err  error
}

func (r *hookReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off >= r.at {
		if r.hook != nil {
			r.hook()
			r.hook = nil
		}
		if r.err != nil {
			return 0, r.err
		}
	}
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	end := min(len(r.data), r.off+len(p), r.off+256<<10)
	if r.off < r.at {
		end = min(end, r.at)
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

// wantNothing checks that key is absent, the store's path is empty, and no
// multipart upload is left under it.
func wantNothing(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, err := s.Stat(context.Background(), key); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("Stat(%q) after a failed put: %v; want NotFound", key, err)
	}
	err := s.List(context.Background(), "", "", func(info sdk.ObjectInfo) error {
		t.Errorf("List after a failed put reports %q", info.Key)
		return nil
	})
	if err != nil {
		t.Errorf("List: %v", err)
	}
	if u := uploads(t, s); len(u) != 0 {
		t.Errorf("%d multipart uploads left after a failed put; want them aborted", len(u))
	}
}

// TestMultipart puts an object of three parts through the plugin and reads
// it back whole and in ranges across the part boundaries.
func TestMultipart(t *testing.T) {
	settings := with(serverSettings(t), "part-size", "5MiB", "concurrency", "1")
	t.Cleanup(func() { cleanupPath(t, settings) })
	st := plugintest.Open(t, "s3", settings)
	data := randomData(1, bigSize)
	info, err := st.Put(t.Context(), "big", struct{ io.Reader }{bytes.NewReader(data)}, sdk.PutOptions{})
	if err != nil {
		t.Fatalf("Put of %d bytes: %v", bigSize, err)
	}
	if info.Size != bigSize || !strings.HasSuffix(info.ETag, "-3") {
		t.Errorf("Put returned Size %d, ETag %q; want %d and the ETag of a 3-part upload (ending -3)", info.Size, info.ETag, bigSize)
	}
	if got, err := st.Stat(t.Context(), "big"); err != nil || got.ETag != info.ETag || got.Size != bigSize {
		t.Errorf("Stat: %+v, %v; want the Put's ETag and size", got, err)
	}
	for _, r := range [][2]int64{{0, -1}, {testPartSize - 10, 20}, {2*testPartSize - 1, 2}, {bigSize - 5, -1}, {bigSize - 5, 100}} {
		rc, err := st.Get(t.Context(), "big", r[0], r[1])
		if err != nil {
			t.Fatalf("Get(%d, %d): %v", r[0], r[1], err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(bigSize)
		if r[1] >= 0 {
			end = min(end, r[0]+r[1])
		}
		if err != nil || !bytes.Equal(got, data[r[0]:end]) {
			t.Errorf("Get(%d, %d): %d bytes, %v; want bytes %d to %d of the object", r[0], r[1], len(got), err, r[0], end)
		}
	}
}

// TestMultipartFailures makes multipart puts fail in each way and checks
// that nothing is visible and the upload was aborted. The store runs in
// this process, so that the abort is done when Put returns.
func TestMultipartFailures(t *testing.T) {
	t.Parallel()
	s := openDirect(t, with(serverSettings(t), "part-size", "5MiB", "concurrency", "2"))
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		at   int
		err  error
		// cancel: the hook cancels the put's context (the reader goes on).
		cancel bool
		want   func(error) bool
	}{
		// Failures before the third part are before the multipart upload
		// starts; later ones are during it.
		{"Cancelled", 7 << 20, nil, true, func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"CancelledInLastPart", 11 << 20, nil, true, func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"ReaderError", 11 << 20, errBoom, false, func(err error) bool { return errors.Is(err, errBoom) }},
		{"UnexpectedEOF", 6 << 20, io.ErrUnexpectedEOF, false, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "fail/" + tc.name
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := &hookReader{data: randomData(2, bigSize), at: tc.at, err: tc.err, hook: func() {
				if n := len(uploads(t, s)); tc.at > 2*testPartSize && n != 1 {
					t.Errorf("%d multipart uploads in progress after %d bytes; want 1", n, tc.at)
				}
				if tc.cancel {
					cancel()
				}
			}}
			_, err := s.Put(ctx, key, r, sdk.PutOptions{})
			if err == nil || !tc.want(err) {
				t.Fatalf("Put that failed after %d bytes: %v; want the failure", tc.at, err)
			}
			wantNothing(t, s, key)
		})
	}
}

// TestMultipartCancelledThroughPlugin cancels a multipart put on the host
// side of the plugin protocol; the plugin must abort the upload.
func TestMultipartCancelledThroughPlugin(t *testing.T) {
	settings := with(serverSettings(t), "part-size", "5MiB")
	s := openDirect(t, settings)
	st := plugintest.Open(t, "s3", settings)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// At 11 MiB the plugin has two parts and starts the multipart upload;
	// wait for it to appear, then cancel.
	r := &hookReader{data: randomData(3, bigSize), at: 11 << 20, hook: func() {
		deadline := time.Now().Add(10 * time.Second)
		for len(uploads(t, s)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if len(uploads(t, s)) == 0 {
			t.Error("no multipart upload started after 11 MiB of a put with part-size 5MiB")
		}
		cancel()
	}}
	if _, err := st.Put(ctx, "cancelled", r, sdk.PutOptions{}); err == nil {
		t.Fatal("Put whose context was cancelled succeeded")
	}
	// The plugin learns of the cancellation asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for len(uploads(t, s)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	wantNothing(t, s, "cancelled")
}

// TestMultipartConditional checks that the condition of a multipart put is
// enforced when the upload completes, for a key that changes after the
// put started (and so after its early check).
func TestMultipartConditional(t *testing.T) {
	t.Parallel()
	s := openDirect(t, with(serverSettings(t), "part-size", "5MiB"))
	ctx := t.Context()
	data := randomData(4, bigSize)
	put := func(key, content string) sdk.ObjectInfo {
		t.Helper()
		info, err := s.Put(ctx, key, strings.NewReader(content), sdk.PutOptions{})
		if err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		return info
	}

	// IfAbsent: the key appears while the parts upload.
	r := &hookReader{data: data, at: 6 << 20, hook: func() { put("absent", "raced") }}
	_, err := s.Put(ctx, "absent", r, sdk.PutOptions{IfAbsent: true})
	if sdk.CodeOf(err) != sdk.AlreadyExists {
		t.Errorf("multipart Put(IfAbsent) of a key created meanwhile: %v; want AlreadyExists", err)
	}
	// IfMatch: the key changes while the parts upload.
	v1 := put("match", "v1")
	r = &hookReader{data: data, at: 6 << 20, hook: func() { put("match", "v2") }}
	_, err = s.Put(ctx, "match", r, sdk.PutOptions{IfMatch: v1.ETag})
	if sdk.CodeOf(err) != sdk.PreconditionFailed {
		t.Errorf("multipart Put(IfMatch) of a key changed meanwhile: %v; want PreconditionFailed", err)
	}
	if u := uploads(t, s); len(u) != 0 {
		t.Errorf("%d multipart uploads left after failed conditional puts; want them aborted", len(u))
	}
	// The early check: a stale ETag fails before any part is sent.
	_, err = s.Put(ctx, "match", bytes.NewReader(data), sdk.PutOptions{IfMatch: v1.ETag})
	if sdk.CodeOf(err) != sdk.PreconditionFailed {
		t.Errorf("multipart Put(IfMatch) with a stale ETag: %v; want PreconditionFailed", err)
	}
	// And a multipart put whose condition holds.
	v2, err := s.Stat(ctx, "match")
	if err != nil {
		t.Fatal(err)
	}
	if _, err = s.Put(ctx, "match", bytes.NewReader(data), sdk.PutOptions{IfMatch: v2.ETag}); err != nil {
		t.Errorf("multipart Put(IfMatch) with the current ETag: %v", err)
	}
	if _, err = s.Put(ctx, "new", bytes.NewReader(data), sdk.PutOptions{IfAbsent: true}); err != nil {
		t.Errorf("multipart Put(IfAbsent) of a new key: %v", err)
	}
}

// TestExactlyOnePart: an object of exactly part-size bytes is one
// PutObject, not a multipart upload of one part.
func TestExactlyOnePart(t *testing.T) {
	t.Parallel()
	s := openDirect(t, with(serverSettings(t), "part-size", "5MiB"))
	info, err := s.Put(t.Context(), "one", bytes.NewReader(randomData(5, testPartSize)), sdk.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != testPartSize || strings.Contains(info.ETag, "-") {
		t.Errorf("Put of part-size bytes: Size %d, ETag %q; want %d and a single-part ETag", info.Size, info.ETag, testPartSize)
	}
}

// TestFill checks the buffering of a put: a small object costs little
// memory, and a part never grows past part-size.
func TestFill(t *testing.T) {
	buf, eof, err := fill(strings.NewReader("small"), nil, 16<<20)
	if err != nil || !eof || string(buf) != "small" || cap(buf) > 64<<10 {
		t.Errorf("fill(small) = %q (cap %d), %v, %v; want all of it in at most 64 KiB", buf, cap(buf), eof, err)
	}
	big := randomData(6, 3<<20)
	buf, eof, err = fill(bytes.NewReader(big), nil, 1<<20+3)
	if err != nil || eof || !bytes.Equal(buf, big[:1<<20+3]) || cap(buf) != 1<<20+3 {
		t.Errorf("fill(3 MiB, size 1 MiB+3) = %d bytes (cap %d), eof %v, %v; want exactly size bytes", len(buf), cap(buf), eof, err)
	}
}
