package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// testKey returns a deterministic key: tests need stable ids in messages,
// never a secret.
func testKey(t testing.TB, b byte) *crypt.Key {
	t.Helper()
	k, err := crypt.NewKey(bytes.Repeat([]byte{b}, crypt.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testKeyring(t testing.TB, keys ...*crypt.Key) *crypt.Keyring {
	t.Helper()
	kr, err := crypt.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// marker is a recognisable plaintext run written into test pages, so that
// a test can assert it never appears in a sealed object.
const marker = "PLAINTEXT-MARKER-must-not-leak"

func markedPages(pageSize uint32, pgnos ...uint32) []page {
	pages := makePages(pageSize, 11, pgnos...)
	for _, p := range pages {
		copy(p.data[64:], marker)
	}
	return pages
}

// blockSpans returns the [start, end) offsets of each block (header and
// stored bytes) of a well-formed object.
func blockSpans(t *testing.T, obj []byte) [][2]int {
	t.Helper()
	var spans [][2]int
	off := HeaderSize
	for {
		rawLen := binary.BigEndian.Uint32(obj[off:])
		if rawLen == 0 {
			return spans
		}
		n := int(binary.BigEndian.Uint32(obj[off+4:]) &^ storedRawFlag)
		spans = append(spans, [2]int{off, off + blockHeaderSize + n})
		off += blockHeaderSize + n
	}
}

// TestEncryptedRoundTrip writes and reads objects for every compression,
// with and without a key, in several block sizes: the pages come back,
// the header says how the object was sealed, and no page byte is visible.
func TestEncryptedRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	keys := testKeyring(t, key)
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		for _, encrypted := range []bool{false, true} {
			for _, kind := range []Kind{KindSegment, KindSnapshot} {
				for _, blockPages := range []int{1, 3, 0} {
					name := fmt.Sprintf("%v/encrypted=%v/%v/block=%d", c, encrypted, kind, blockPages)
					t.Run(name, func(t *testing.T) {
						pages := markedPages(1024, seq(1, 9)...)
						hdr := segmentHeader(c, 1024, 12, pages)
						if kind == KindSnapshot {
							pages = markedPages(1024, seq(1, 12)...)
							hdr = snapshotHeader(c, 1024, pages)
						}
						opts := WriterOptions{BlockPages: blockPages}
						if encrypted {
							opts.Key = key
						}
						obj := encode(t, hdr, opts, pages)
						got, gotPages, err := decodeKeys(obj, keys)
						if err != nil {
							t.Fatal(err)
						}
						equalPages(t, gotPages, pages)
						if leaked := bytes.Contains(obj, []byte(marker)); leaked == encrypted {
							t.Fatalf("marker visible: %v, encrypted: %v", leaked, encrypted)
						}
						want := hdr
						if encrypted {
							if got.Encryption != EncryptionAESGCM || got.KeyID != key.ID() || got.Salt == ([crypt.SaltSize]byte{}) {
								t.Fatalf("encrypted header: %+v", got)
							}
							want.Encryption, want.KeyID, want.Salt = got.Encryption, got.KeyID, got.Salt
						}
						if got != want {
							t.Fatalf("header\n got %+v\nwant %+v", got, want)
						}
						// Listing needs no key.
						if h, err := ReadHeader(bytes.NewReader(obj)); err != nil || h != got {
							t.Fatalf("ReadHeader: %+v, %v", h, err)
						}
						if _, err := VerifyOptions(bytes.NewReader(obj), ReaderOptions{Keys: keys}); err != nil {
							t.Fatalf("VerifyOptions: %v", err)
						}
					})
				}
			}
		}
	}
}

// TestEncryptedReadErrors breaks sealed objects in the ways an attacker or
// a mistake would, and checks that each is refused with the right kind of
// error and a message that says what to do.
func TestEncryptedReadErrors(t *testing.T) {
	oldKey, key, other := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	pages := markedPages(512, seq(1, 7)...)
	hdr := segmentHeader(CompressionNone, 512, 7, pages)
	obj := encode(t, hdr, WriterOptions{BlockPages: 2, Key: key}, pages)
	spans := blockSpans(t, obj)
	if len(spans) != 4 {
		t.Fatalf("%d blocks, want 4", len(spans))
	}
	// A second object with the same key and layout, to splice from.
	twin := encode(t, hdr, WriterOptions{BlockPages: 2, Key: key}, pages)

	// withHeader changes a header field, repairs the header CRC and the
	// trailer hash: only the seal can notice.
	withHeader := func(edit func(b []byte)) []byte {
		b := bytes.Clone(obj)
		edit(b[:HeaderSize])
		sealHeader(b)
		return rehash(b)
	}
	tests := []struct {
		name string
		obj  []byte
		keys *crypt.Keyring
		// want is the sentinel the error wraps; nil means success.
		want    error
		message string
	}{
		{"right key", obj, testKeyring(t, key), nil, ""},
		{"keyring with the key second", obj, testKeyring(t, other, key), nil, ""},
		{"no key", obj, nil, crypt.ErrKeyRequired, "encrypted with key " + key.ID().String()},
		{"wrong key", obj, testKeyring(t, other), crypt.ErrWrongKey,
			fmt.Sprintf("encrypted with key %s, you gave key %s", key.ID(), other.ID())},
		{"wrong keys", obj, testKeyring(t, other, oldKey), crypt.ErrWrongKey,
			fmt.Sprintf("you gave keys %s, %s", other.ID(), oldKey.ID())},
		{"tampered ciphertext", func() []byte {
			b := bytes.Clone(obj)
			b[spans[1][0]+blockHeaderSize+5] ^= 0x40
			return rehash(b)
		}(), testKeyring(t, key), ErrCorrupt, "authentication failed"},
		{"tampered tag", func() []byte {
			b := bytes.Clone(obj)
			b[spans[3][1]-1] ^= 1
			return rehash(b)
		}(), testKeyring(t, key), ErrCorrupt, "authentication failed"},
		{"tampered header field", withHeader(func(b []byte) {
			binary.BigEndian.PutUint64(b[104:], binary.BigEndian.Uint64(b[104:])+1)
		}), testKeyring(t, key), ErrCorrupt, "authentication failed"},
		{"tampered salt", withHeader(func(b []byte) { b[115] ^= 1 }), testKeyring(t, key), ErrCorrupt, "authentication failed"},
		{"header says plaintext", withHeader(func(b []byte) {
			b[12] = 0
			clear(b[28:32])
			clear(b[112:124])
		}), testKeyring(t, key), ErrCorrupt, ""},
		{"stored-raw flag flipped", func() []byte {
			b := bytes.Clone(obj)
			b[spans[0][0]+4] ^= 0x80
			return rehash(b)
		}(), testKeyring(t, key), ErrCorrupt, ""},
		{"blocks swapped", func() []byte {
			b := bytes.Clone(obj)
			first := bytes.Clone(b[spans[0][0]:spans[0][1]])
			copy(b[spans[0][0]:], b[spans[1][0]:spans[1][1]])
			copy(b[spans[1][0]:], first)
			return rehash(b)
		}(), testKeyring(t, key), ErrCorrupt, "authentication failed"},
		{"block from another object", func() []byte {
			b := bytes.Clone(obj)
			copy(b[spans[1][0]:spans[1][1]], twin[spans[1][0]:spans[1][1]])
			return rehash(b)
		}(), testKeyring(t, key), ErrCorrupt, "authentication failed"},
		{"last block dropped", func() []byte {
			b := append(bytes.Clone(obj[:spans[2][1]]), obj[spans[3][1]:]...)
			return rehash(b)
		}(), testKeyring(t, key), ErrCorrupt, "header promises"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := decodeKeys(tt.obj, tt.keys)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				equalPages(t, got, pages)
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want one wrapping %v", err, tt.want)
			}
			if tt.want != ErrCorrupt && errors.Is(err, ErrCorrupt) {
				t.Fatalf("a missing or wrong key reads as corruption: %v", err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q does not say %q", err, tt.message)
			}
			// No page of a refused object is handed out before the error
			// beyond what authenticated.
			for _, p := range got {
				if !bytes.Equal(p.data, pages[p.pgno-1].data) {
					t.Fatalf("page %d handed out altered", p.pgno)
				}
			}
		})
	}
}

// TestEncryptedWriter covers the Writer's side: a header asking for
// encryption without a key is refused (never silently written in
// plaintext), stale encryption fields in a copied header are replaced, and every object (also after Reset) gets its own
// salt, so no AES key and nonce pair is ever used twice.
func TestEncryptedWriter(t *testing.T) {
	key := testKey(t, 1)
	pages := makePages(512, 4, 1, 2)
	hdr := segmentHeader(CompressionLZ4, 512, 2, pages)

	enc := hdr
	enc.Encryption = EncryptionAESGCM
	if _, err := NewWriter(io.Discard, enc, WriterOptions{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("NewWriter asking for encryption without a key: %v, want ErrUnsupported", err)
	}

	stale := hdr
	stale.Encryption, stale.KeyID, stale.Salt = 9, crypt.ID{9}, [crypt.SaltSize]byte{9}
	salts := map[[crypt.SaltSize]byte]bool{}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, stale, WriterOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for _, p := range pages {
			if err := w.WritePage(p.pgno, p.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		h, got, err := decodeKeys(buf.Bytes(), testKeyring(t, key))
		if err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
		equalPages(t, got, pages)
		if h != w.Header() || h.Encryption != EncryptionAESGCM || h.KeyID != key.ID() || salts[h.Salt] {
			t.Fatalf("object %d: header %+v, Writer says %+v, salts so far %v", i, h, w.Header(), salts)
		}
		salts[h.Salt] = true
		buf.Reset()
		if err := w.Reset(&buf, stale); err != nil {
			t.Fatal(err)
		}
	}

	// Without a key, a sealed object's header is refused rather than
	// written in plaintext.
	if _, err := NewWriter(io.Discard, w.Header(), WriterOptions{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("NewWriter with a sealed header and no key: %v, want ErrUnsupported", err)
	}
}

// TestMergeReencrypts merges inputs sealed with an old key into an output
// sealed with the new one, as compaction does after a key rotation.
func TestMergeReencrypts(t *testing.T) {
	oldKey, newKey := testKey(t, 1), testKey(t, 2)
	dir := t.TempDir()
	a := markedPages(512, 1, 2, 3)
	b := markedPages(512, 2, 4)
	for i := range b {
		b[i].data[0] ^= 0xff // differs from a's page 2
	}
	ha := segmentHeader(CompressionZstd, 512, 3, a)
	hb := segmentHeader(CompressionLZ4, 512, 4, b)
	hb.MinTXID, hb.MaxTXID = ha.MaxTXID+1, ha.MaxTXID+1
	hb.ChecksumBefore, hb.ChecksumAfter = ha.ChecksumAfter, ha.ChecksumAfter^1
	paths := []string{writeFile(t, dir, "a", encode(t, ha, WriterOptions{Key: oldKey}, a)),
		writeFile(t, dir, "b", encode(t, hb, WriterOptions{}, b))}

	var out bytes.Buffer
	if _, err := MergeFilesOptions(paths, &out, MergeOptions{Compression: CompressionLZ4, Key: newKey}); !errors.Is(err, crypt.ErrKeyRequired) {
		t.Fatalf("merge without the input's key: %v, want ErrKeyRequired", err)
	}
	out.Reset()
	h, err := MergeFilesOptions(paths, &out, MergeOptions{
		Compression: CompressionLZ4, Keys: testKeyring(t, newKey, oldKey), Key: newKey})
	if err != nil {
		t.Fatal(err)
	}
	if h.KeyID != newKey.ID() || bytes.Contains(out.Bytes(), []byte(marker)) {
		t.Fatalf("merged header %+v (marker visible: %v)", h, bytes.Contains(out.Bytes(), []byte(marker)))
	}
	if _, _, err := decodeKeys(out.Bytes(), testKeyring(t, oldKey)); !errors.Is(err, crypt.ErrWrongKey) {
		t.Fatalf("merged object with the old key only: %v, want ErrWrongKey", err)
	}
	got, pages, err := decodeKeys(out.Bytes(), testKeyring(t, newKey))
	if err != nil || got != h {
		t.Fatalf("merged object: %+v, %v", got, err)
	}
	equalPages(t, pages, []page{a[0], b[0], a[2], b[1]})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTranscode encrypts a plaintext object, re-encrypts it under another
// key and decrypts it again: the pages and the header survive every step,
// and a damaged source is refused.
func TestTranscode(t *testing.T) {
	k1, k2 := testKey(t, 1), testKey(t, 2)
	keys := testKeyring(t, k2, k1)
	pages := markedPages(4096, 1, 2, 5)
	hdr := segmentHeader(CompressionZstd, 4096, 5, pages)
	plain := encode(t, hdr, WriterOptions{}, pages)
	steps := []struct {
		name  string
		ropts ReaderOptions
		key   *crypt.Key
	}{
		{"encrypt", ReaderOptions{}, k1},
		{"re-encrypt", ReaderOptions{Keys: keys}, k2},
		{"decrypt", ReaderOptions{Keys: keys}, nil},
	}
	obj := plain
	for _, s := range steps {
		var out bytes.Buffer
		h, err := Transcode(&out, bytes.NewReader(obj), s.ropts, WriterOptions{Key: s.key})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, gotPages, err := decodeKeys(out.Bytes(), keys)
		if err != nil || got != h {
			t.Fatalf("%s: header %+v, Transcode said %+v, %v", s.name, got, h, err)
		}
		equalPages(t, gotPages, pages)
		want := hdr
		if s.key != nil {
			want.Encryption, want.KeyID, want.Salt = EncryptionAESGCM, s.key.ID(), got.Salt
		}
		if got != want || bytes.Contains(out.Bytes(), []byte(marker)) == (s.key != nil) {
			t.Fatalf("%s: header %+v, want %+v", s.name, got, want)
		}
		obj = out.Bytes()
	}
	bad := bytes.Clone(plain)
	bad[len(bad)-20] ^= 1
	if _, err := Transcode(io.Discard, bytes.NewReader(bad), ReaderOptions{}, WriterOptions{Key: k1}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("transcoding a damaged object: %v, want ErrCorrupt", err)
	}
}

// TestSeal encrypts plaintext objects block for block: the result reads
// back as the same object under the key, every block keeps its stored
// (compressed) form plus the 16-byte tag, and a damaged or already
// encrypted source is refused.
func TestSeal(t *testing.T) {
	key := testKey(t, 4)
	keys := testKeyring(t, key)
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		for _, kind := range []Kind{KindSegment, KindSnapshot} {
			t.Run(fmt.Sprintf("%v/%v", c, kind), func(t *testing.T) {
				pages := markedPages(1024, seq(1, 9)...)
				hdr := segmentHeader(c, 1024, 12, pages)
				if kind == KindSnapshot {
					hdr = snapshotHeader(c, 1024, pages)
				}
				plain := encode(t, hdr, WriterOptions{BlockPages: 4}, pages)
				var out bytes.Buffer
				h, err := Seal(&out, bytes.NewReader(plain), key)
				if err != nil {
					t.Fatal(err)
				}
				got, gotPages, err := decodeKeys(out.Bytes(), keys)
				if err != nil || got != h {
					t.Fatalf("sealed object: %+v (Seal said %+v), %v", got, h, err)
				}
				equalPages(t, gotPages, pages)
				want := hdr
				want.Encryption, want.KeyID, want.Salt = EncryptionAESGCM, key.ID(), got.Salt
				if got != want || bytes.Contains(out.Bytes(), []byte(marker)) {
					t.Fatalf("header %+v, want %+v", got, want)
				}
				ps, ss := blockSpans(t, plain), blockSpans(t, out.Bytes())
				if len(ps) != len(ss) {
					t.Fatalf("%d blocks became %d", len(ps), len(ss))
				}
				for i := range ps {
					if n, m := ps[i][1]-ps[i][0], ss[i][1]-ss[i][0]; m != n+16 {
						t.Fatalf("block %d: %d bytes sealed into %d, want +16", i, n, m)
					}
				}

				bad := bytes.Clone(plain)
				bad[ps[1][0]+blockHeaderSize+2] ^= 1 // caught by the block CRC
				if _, err := Seal(io.Discard, bytes.NewReader(bad), key); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("sealing a damaged object: %v, want ErrCorrupt", err)
				}
				if _, err := Seal(io.Discard, bytes.NewReader(plain[:len(plain)-1]), key); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("sealing a truncated object: %v, want ErrCorrupt", err)
				}
				if _, err := Seal(io.Discard, bytes.NewReader(out.Bytes()), key); !errors.Is(err, crypt.ErrKeyRequired) {
					t.Fatalf("sealing a sealed object: %v, want ErrKeyRequired", err)
				}
			})
		}
	}
}
