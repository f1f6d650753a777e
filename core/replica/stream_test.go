package replica_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

const streamGen = "20261122T080000Z-0badcafe"

// streamObject encodes a segment of txid 1 holding pages 1..n.
func streamObject(t *testing.T, n int) []byte {
	t.Helper()
	var sum segment.Checksum
	pages := make([][]byte, n)
	for i := range pages {
		pages[i] = bytes.Repeat([]byte{byte(i + 1)}, 1024)
		sum = sum.AddPage(uint32(i+1), pages[i])
	}
	h := segment.Header{Kind: segment.KindSegment, Compression: segment.CompressionLZ4, PageSize: 1024,
		Generation: streamGen, MinTXID: 1, MaxTXID: 1, DBSize: uint32(n), PageCount: uint32(n), ChecksumAfter: sum}
	var buf bytes.Buffer
	w, err := segment.NewWriter(&buf, h, segment.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pages {
		if err := w.WritePage(uint32(i+1), p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// flakyStore fails the first failGets reads of an object halfway with a
// transient error, as a dropped connection would.
type flakyStore struct {
	sdk.Storage
	failGets atomic.Int32
}

func (s *flakyStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.Storage.Get(ctx, key, offset, length)
	if err != nil || s.failGets.Add(-1) < 0 {
		return rc, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	return io.NopCloser(io.MultiReader(bytes.NewReader(b[:len(b)/2]), errReader{sdk.ErrUnavailable})), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestStream(t *testing.T) {
	const pages = 600 // more than one block
	good := streamObject(t, pages)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/2] ^= 0xff
	cases := []struct {
		name     string
		stored   []byte
		failGets int32
		obj      replica.Object
		// stopAfter makes apply return after that many pages (0: all).
		stopAfter int
		wantErr   string
		wantCalls int
	}{
		{name: "every page, once", stored: good, wantCalls: 1},
		{name: "a transient failure reads the object again", stored: good, failGets: 1, wantCalls: 2},
		{name: "damage fails", stored: corrupt, wantErr: "corrupt", wantCalls: 1},
		{name: "an apply that stops early fails", stored: good, stopAfter: 10, wantErr: "not read to its end", wantCalls: 1},
		{name: "an object that is not what its name says is not applied", stored: good,
			obj: replica.Object{Generation: streamGen, Level: 0, Min: 2, Max: 2}, wantErr: "holds", wantCalls: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st := &flakyStore{Storage: memstore.New()}
			st.failGets.Store(c.failGets)
			o := c.obj
			if o.Generation == "" {
				o = replica.Object{Generation: streamGen, Level: 0, Min: 1, Max: 1}
			}
			key, err := replica.Key(o)
			if err != nil {
				t.Fatal(err)
			}
			o.Key = key
			if _, err := st.Put(ctx, key, bytes.NewReader(c.stored), sdk.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			r := replica.New("mem", st, nil)
			calls, got := 0, 0
			h, err := r.Stream(ctx, o, func(sr *segment.Reader) error {
				calls++
				got = 0
				for {
					_, _, err := sr.Next()
					if err == io.EOF {
						return nil
					}
					if err != nil {
						return err
					}
					if got++; got == c.stopAfter {
						return nil
					}
				}
			})
			if calls != c.wantCalls {
				t.Errorf("apply called %d times, want %d", calls, c.wantCalls)
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				if c.wantErr == "corrupt" && !errors.Is(err, segment.ErrCorrupt) {
					t.Errorf("err = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != pages || h.MaxTXID != 1 || h.DBSize != pages {
				t.Errorf("read %d pages, header %+v; want %d pages of txid 1", got, h, pages)
			}
		})
	}
}
