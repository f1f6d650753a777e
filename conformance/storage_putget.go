package conformance

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"testing/iotest"

	"github.com/sqlitereplicator/replicator/sdk"
)

// largeSize is the size of the object in PutGet/Large: more than a few
// typical part and chunk sizes (1, 4, 5, 8 MiB), and not a multiple of any.
const largeSize = 9<<20 + 12345

func testPutGet(t *testing.T, h Harness) {
	leaf(t, h, "RoundTrip", func(e *env) {
		data := text(1000)
		e.put("obj", data)
		e.wantContent("obj", data)
	})

	leaf(t, h, "Empty", func(e *env) {
		info := e.put("empty", nil)
		if info.Size != 0 {
			e.t.Errorf("Put(%q) of an empty object returned Size %d, want 0", "empty", info.Size)
		}
		e.wantContent("empty", []byte{})
		if got := e.stat("empty").Size; got != 0 {
			e.t.Errorf("Stat(%q) of an empty object: Size %d, want 0", "empty", got)
		}
		e.wantList("", "", []string{"empty"})
	})

	leaf(t, h, "Large", func(e *env) {
		if m := e.caps.MaxObjectSize; m > 0 && m < largeSize {
			e.t.Skipf("disabled: store declares MaxObjectSize %d, below the %d bytes this test puts", m, largeSize)
		}
		const key = "large/object.bin"
		data := randomBytes(1, largeSize)
		info := e.put(key, data)
		if info.Size != largeSize {
			e.t.Errorf("Put(%q) returned Size %d, want %d", key, info.Size, largeSize)
		}
		rc, err := e.s.Get(e.ctx, key, 0, -1)
		if err != nil {
			e.t.Fatalf("Get(%q, 0, -1): %v", key, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			e.t.Fatalf("Get(%q, 0, -1): read after %d bytes: %v", key, n, err)
		}
		if want := sha256.Sum256(data); n != largeSize || !bytes.Equal(h.Sum(nil), want[:]) {
			e.t.Errorf("Get(%q, 0, -1) returned %d bytes with sha256 %x, want %d bytes with sha256 %x", key, n, h.Sum(nil), largeSize, want)
		}
		if got := e.stat(key).Size; got != largeSize {
			e.t.Errorf("Stat(%q): Size %d, want %d", key, got, largeSize)
		}
		// Ranges across the 4 MiB and 8 MiB boundaries and to the end.
		for _, r := range [][2]int64{{4<<20 - 7, 100}, {8<<20 - 1000, 3 << 10}, {largeSize - 10, 1000}} {
			got, err := e.readRange(key, r[0], r[1])
			want := data[r[0]:min(r[0]+r[1], largeSize)]
			if err != nil {
				e.t.Errorf("Get(%q, %d, %d): %v", key, r[0], r[1], err)
			} else if !bytes.Equal(got, want) {
				e.t.Errorf("Get(%q, %d, %d) returned %d bytes, not the %d bytes of the object there", key, r[0], r[1], len(got), len(want))
			}
		}
	})

	leaf(t, h, "Overwrite", func(e *env) {
		e.put("obj", text(5000))
		e.put("obj", []byte("short"))
		e.wantContent("obj", []byte("short"))
		if got := e.stat("obj").Size; got != 5 {
			e.t.Errorf("Stat(%q) after overwrite: Size %d, want 5", "obj", got)
		}
		e.wantList("", "", []string{"obj"})
	})

	// Readers that return one byte per Read, and data together with EOF,
	// are both legal io.Readers.
	leaf(t, h, "OneByteReader", func(e *env) {
		data := text(3000)
		if _, err := e.s.Put(e.ctx, "obj", iotest.OneByteReader(bytes.NewReader(data)), sdk.PutOptions{}); err != nil {
			e.t.Fatalf("Put(%q) from a one-byte reader: %v", "obj", err)
		}
		e.wantContent("obj", data)
	})

	leaf(t, h, "DataWithEOF", func(e *env) {
		data := text(3000)
		if _, err := e.s.Put(e.ctx, "obj", iotest.DataErrReader(bytes.NewReader(data)), sdk.PutOptions{}); err != nil {
			e.t.Fatalf("Put(%q) from a reader returning data with EOF: %v", "obj", err)
		}
		e.wantContent("obj", data)
	})

	leaf(t, h, "MaxObjectSize", func(e *env) {
		m := e.caps.MaxObjectSize
		if m == 0 {
			e.t.Skip("not applicable: store declares no MaxObjectSize")
		}
		if m > 64<<20 {
			e.t.Skipf("not applicable: MaxObjectSize %d is too large to test", m)
		}
		info, err := e.s.Put(e.ctx, "max", io.LimitReader(patternReader{}, m), sdk.PutOptions{})
		if err != nil {
			e.t.Fatalf("Put(%q) of MaxObjectSize (%d) bytes: %v", "max", m, err)
		}
		if info.Size != m {
			e.t.Errorf("Put(%q) of MaxObjectSize bytes returned Size %d, want %d", "max", info.Size, m)
		}
		if _, err := e.s.Put(e.ctx, "over", io.LimitReader(patternReader{}, m+1), sdk.PutOptions{}); err == nil {
			e.t.Errorf("Put(%q) of MaxObjectSize+1 (%d) bytes succeeded, want an error", "over", m+1)
		}
		e.wantAbsent("over")
		e.wantList("", "", []string{"max"})
	})
}

// patternReader is an endless reader of a repeating byte pattern.
type patternReader struct{}

var pattern = text(64 << 10)

func (patternReader) Read(p []byte) (int, error) {
	return copy(p, pattern), nil
}

func testStat(t *testing.T, h Harness) {
	leaf(t, h, "MatchesPut", func(e *env) {
		data := text(777)
		put := e.put("dir/obj", data)
		if put.Key != "dir/obj" || put.Size != 777 || put.ETag == "" {
			e.t.Errorf("Put(%q, 777 bytes) returned Key %q, Size %d, ETag %q; want the key, 777 and an ETag", "dir/obj", put.Key, put.Size, put.ETag)
		}
		st := e.stat("dir/obj")
		if st.Key != "dir/obj" || st.Size != 777 {
			e.t.Errorf("Stat(%q) returned Key %q, Size %d; want the key and 777", "dir/obj", st.Key, st.Size)
		}
		if st.ETag != put.ETag {
			e.t.Errorf("Stat(%q) returned ETag %q, Put returned %q; want the same", "dir/obj", st.ETag, put.ETag)
		}
		if st.ModTime.IsZero() {
			e.t.Errorf("Stat(%q) returned a zero ModTime", "dir/obj")
		}
	})

	leaf(t, h, "ETagChangesOnOverwrite", func(e *env) {
		first := e.put("obj", []byte("first version"))
		second := e.put("obj", []byte("second version, longer"))
		if first.ETag == second.ETag {
			e.t.Errorf("Put(%q) of new content returned the ETag of the old, %q", "obj", first.ETag)
		}
		if st := e.stat("obj"); st.ETag != second.ETag || st.Size != 22 {
			e.t.Errorf("Stat(%q) after overwrite: ETag %q, Size %d; want %q, 22", "obj", st.ETag, st.Size, second.ETag)
		}
	})

	leaf(t, h, "ETagStable", func(e *env) {
		put := e.put("obj", []byte("content"))
		e.get("obj")
		for range 3 {
			if st := e.stat("obj"); st.ETag != put.ETag {
				e.t.Fatalf("Stat(%q) returned ETag %q, then %q, with no Put between", "obj", put.ETag, st.ETag)
			}
		}
	})
}

func testNotFound(t *testing.T, h Harness) {
	leaf(t, h, "Get", func(e *env) {
		rc, err := e.s.Get(e.ctx, "missing", 0, -1)
		if err == nil {
			data, rerr := io.ReadAll(rc)
			rc.Close()
			e.t.Fatalf("Get(%q, 0, -1) of a missing key returned no error (then read %s, %v); NotFound must come from Get itself, not from Read", "missing", describe(data), rerr)
		}
		e.wantCode(err, sdk.ErrNotFound, "Get(%q, 0, -1)", "missing")
	})

	leaf(t, h, "GetRange", func(e *env) {
		rc, err := e.s.Get(e.ctx, "missing", 10, 5)
		if err == nil {
			rc.Close()
			e.t.Fatalf("Get(%q, 10, 5) of a missing key returned no error; want NotFound", "missing")
		}
		e.wantCode(err, sdk.ErrNotFound, "Get(%q, 10, 5)", "missing")
	})

	leaf(t, h, "Stat", func(e *env) {
		_, err := e.s.Stat(e.ctx, "missing")
		e.wantCode(err, sdk.ErrNotFound, "Stat(%q)", "missing")
	})

	// A key that is a path prefix of another is not an object, even where
	// the backend has a directory by that name.
	leaf(t, h, "ParentOfKey", func(e *env) {
		e.put("parent/child/obj", []byte("x"))
		e.wantAbsent("parent/child")
		e.wantAbsent("parent")
	})

	leaf(t, h, "AfterDelete", func(e *env) {
		e.put("obj", []byte("x"))
		e.del("obj")
		e.wantAbsent("obj")
	})
}
