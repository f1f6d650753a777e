package replica_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

const marker = "REPLICA-PLAINTEXT-MARKER"

// stage writes a one-page plaintext segment for txid to a file, as the
// local state does, with marker in its page.
func stage(t *testing.T, gen string, txid uint64) string {
	t.Helper()
	pg := make([]byte, 1024)
	copy(pg[100:], marker)
	var sum segment.Checksum
	h := segment.Header{Kind: segment.KindSegment, Compression: segment.CompressionLZ4, PageSize: 1024,
		Generation: gen, MinTXID: txid, MaxTXID: txid, DBSize: 1, PageCount: 1,
		ChecksumBefore: sum, ChecksumAfter: sum.AddPage(1, pg)}
	var buf bytes.Buffer
	w, err := segment.NewWriter(&buf, h, segment.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePage(1, pg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "staged.segment")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type memFile struct{ bytes.Buffer }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if int(off) != m.Len() {
		return 0, errors.New("memFile: writes must be sequential")
	}
	return m.Write(p)
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.Bytes()).ReadAt(p, off)
}

// TestEncryptedUploadDownload uploads a plaintext staged segment through a
// replica with a key: storage holds no plaintext, the header names the key,
// and downloads succeed with the key and fail clearly without it.
func TestEncryptedUploadDownload(t *testing.T) {
	ctx := context.Background()
	oldKey, _ := crypt.GenerateKey()
	newKey, _ := crypt.GenerateKey()
	const gen = "20261122T070000Z-0123abcd"
	st := memstore.New()
	writer := replica.New("mem", st, nil)
	writer.Keys, _ = crypt.NewKeyring(oldKey)
	o := replica.Object{Generation: gen, Level: 0, Min: 1, Max: 1}
	if err := writer.Upload(ctx, o, stage(t, gen, 1)); err != nil {
		t.Fatal(err)
	}
	// Rotation: the next object carries the new key.
	writer.Keys, _ = crypt.NewKeyring(newKey, oldKey)
	o2 := replica.Object{Generation: gen, Level: 0, Min: 2, Max: 2}
	if err := writer.Upload(ctx, o2, stage(t, gen, 2)); err != nil {
		t.Fatal(err)
	}

	objs, err := writer.Objects(ctx, gen)
	if err != nil || len(objs) != 2 {
		t.Fatalf("objects %v, %v", objs, err)
	}
	for i, o := range objs {
		rc, err := st.Get(ctx, o.Key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(rc)
		rc.Close()
		if bytes.Contains(stored, []byte(marker)) {
			t.Fatalf("%s holds plaintext", o.Key)
		}
		h, err := writer.ReadHeader(ctx, o)
		wantKey := []*crypt.Key{oldKey, newKey}[i]
		if err != nil || h.Encryption != segment.EncryptionAESGCM || h.KeyID != wantKey.ID() {
			t.Fatalf("header of %s: %+v, %v; want key %v", o.Key, h, err, wantKey)
		}
	}

	only := func(keys ...*crypt.Key) *crypt.Keyring {
		if len(keys) == 0 {
			return nil
		}
		kr, err := crypt.NewKeyring(keys...)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	tests := []struct {
		name    string
		keys    *crypt.Keyring
		obj     replica.Object
		want    error
		message string
	}{
		{"both keys, old object", only(newKey, oldKey), objs[0], nil, ""},
		{"both keys, new object", only(newKey, oldKey), objs[1], nil, ""},
		{"no key", nil, objs[0], crypt.ErrKeyRequired, "encrypted with key " + oldKey.ID().String()},
		{"new key only, old object", only(newKey), objs[0], crypt.ErrWrongKey,
			"encrypted with key " + oldKey.ID().String() + ", you gave key " + newKey.ID().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reader := replica.New("mem", st, nil)
			reader.Keys = tt.keys
			var f memFile
			_, err := reader.Download(ctx, tt.obj, &f)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				// The downloaded copy stays sealed; ReaderOptions opens it.
				r, err := segment.NewReaderOptions(bytes.NewReader(f.Bytes()), reader.ReaderOptions())
				if err != nil {
					t.Fatal(err)
				}
				_, pg, err := r.Next()
				if err != nil || !bytes.Contains(pg, []byte(marker)) {
					t.Fatalf("page: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || errors.Is(err, segment.ErrCorrupt) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.obj.Key) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q should name %s and say %q", err, tt.obj.Key, tt.message)
			}
		})
	}

	// An already encrypted file (compaction's output) is stored as it is.
	var f memFile
	if _, err := writer.Download(ctx, objs[0], &f); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sealed")
	if err := os.WriteFile(p, f.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	o3 := replica.Object{Generation: gen, Level: 1, Min: 1, Max: 1}
	if err := writer.Upload(ctx, o3, p); err != nil {
		t.Fatal(err)
	}
	key3, _ := replica.Key(o3)
	rc, err := st.Get(ctx, key3, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, f.Bytes()) {
		t.Fatal("an encrypted file was re-encrypted on upload")
	}
}
