package segment

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// gcmSealer exercises the blockSealer seam. It is test scaffolding, not a
// design for the encryption layer: its key is fixed and its nonce is just
// the block index.
type gcmSealer struct {
	aead cipher.AEAD
	ad   []byte // the object's header
}

func newGCMSealer(t *testing.T, hdr Header) *gcmSealer {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmSealer{aead: aead, ad: rawHeader(hdr)}
}

func (s *gcmSealer) nonce(index uint64) []byte {
	n := make([]byte, s.aead.NonceSize())
	binary.BigEndian.PutUint64(n[len(n)-8:], index)
	return n
}

func (s *gcmSealer) Seal(dst, block []byte, index uint64) []byte {
	return s.aead.Seal(dst, s.nonce(index), block, s.ad)
}

func (s *gcmSealer) Open(dst, sealed []byte, index uint64) ([]byte, error) {
	return s.aead.Open(dst, s.nonce(index), sealed, s.ad)
}

func (s *gcmSealer) Overhead() int { return s.aead.Overhead() }

// TestSealerSeam shows that sealed blocks fit the version 1 layout: the
// Writer and Reader carry them through the seam, and NewReader refuses
// them without a sealer.
func TestSealerSeam(t *testing.T) {
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		t.Run(c.String(), func(t *testing.T) {
			pages := makePages(512, 4, seq(1, 7)...)
			hdr := segmentHeader(c, 512, 7, pages)
			hdr.Encryption = 1
			var buf bytes.Buffer
			w, err := newWriter(&buf, hdr, WriterOptions{BlockPages: 3}, newGCMSealer(t, hdr))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pages {
				if err := w.WritePage(p.pgno, p.data); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			obj := buf.Bytes()
			if bytes.Contains(obj, pages[0].data[:64]) {
				t.Fatal("plaintext visible in a sealed object")
			}

			r, err := newReader(bytes.NewReader(obj), newGCMSealer(t, hdr))
			if err != nil {
				t.Fatal(err)
			}
			var got []page
			for {
				pgno, p, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page{pgno, bytes.Clone(p)})
			}
			equalPages(t, got, pages)

			if h, err := ReadHeader(bytes.NewReader(obj)); err != nil || h != hdr {
				t.Fatalf("ReadHeader of a sealed object: %+v, %v", h, err)
			}
			if _, err := NewReader(bytes.NewReader(obj)); !errors.Is(err, errors.ErrUnsupported) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("NewReader of a sealed object: %v, want ErrUnsupported", err)
			}
			// A damaged sealed block fails authentication, as corruption.
			bad := bytes.Clone(obj)
			bad[HeaderSize+blockHeaderSize+3] ^= 1
			r, err = newReader(bytes.NewReader(rehash(bad)), newGCMSealer(t, hdr))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = r.Next()
			wantCorrupt(t, err, "tampered sealed block")
		})
	}
	plain := segmentHeader(CompressionLZ4, 512, 1, make([]page, 1))
	if _, err := newWriter(io.Discard, plain, WriterOptions{}, newGCMSealer(t, plain)); err == nil {
		t.Error("newWriter accepted a sealer for encryption 0")
	}
}
