package sdk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

// putStore keeps what Put received; the other methods are not used.
type putStore struct {
	Storage // nil: calling anything else panics
	got     []byte
}

func (s *putStore) Capabilities() Capabilities { return Capabilities{} }

func (s *putStore) Put(_ context.Context, key string, r io.Reader, _ PutOptions) (ObjectInfo, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return ObjectInfo{}, err
	}
	s.got = b
	return ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

// TestPutSizes: objects of every size around the growth of the client's
// buffer (from firstChunkSize to chunkSize) arrive whole and unchanged.
func TestPutSizes(t *testing.T) {
	for _, n := range []int{0, 1, firstChunkSize - 1, firstChunkSize, firstChunkSize + 1, 4*firstChunkSize + 1,
		20*firstChunkSize + 3, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 123} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ps := &putStore{}
			st := openTest(t, ps, &tap{})
			content := testContent(n)
			info, err := st.Put(context.Background(), "k", bytes.NewReader(content), PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ps.got, content) || info.Size != int64(n) {
				t.Fatalf("put %d bytes, the store received %d (info size %d), equal: %v", n, len(ps.got), info.Size, bytes.Equal(ps.got, content))
			}
		})
	}
}
