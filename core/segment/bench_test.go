package segment

import (
	"bytes"
	"io"
	"testing"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// benchPages is 4 MiB of 4 KiB pages, half text-like and half random, so
// compressors have work of both kinds (see fillPage).
func benchPages() []page { return makePages(4096, 11, seq(1, 1024)...) }

// benchCases are the compressions, each without and with encryption.
type benchCase struct {
	name string
	c    Compression
	key  *crypt.Key
}

func benchCases(b *testing.B) []benchCase {
	var cs []benchCase
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		cs = append(cs, benchCase{c.String(), c, nil}, benchCase{c.String() + "+aes-gcm", c, testKey(b, 7)})
	}
	return cs
}

func BenchmarkWrite(b *testing.B) {
	pages := benchPages()
	for _, bc := range benchCases(b) {
		c := bc.c
		b.Run(bc.name, func(b *testing.B) {
			hdr := segmentHeader(c, 4096, uint32(len(pages)), pages)
			var buf bytes.Buffer
			b.SetBytes(int64(len(pages) * 4096))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				w, err := NewWriter(&buf, hdr, WriterOptions{Key: bc.key})
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range pages {
					if err := w.WritePage(p.pgno, p.data); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len())/float64(len(pages)*4096), "ratio")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	pages := benchPages()
	for _, bc := range benchCases(b) {
		c := bc.c
		b.Run(bc.name, func(b *testing.B) {
			obj := encode(b, segmentHeader(c, 4096, uint32(len(pages)), pages), WriterOptions{Key: bc.key}, pages)
			var keys *crypt.Keyring
			if bc.key != nil {
				keys = testKeyring(b, bc.key)
			}
			b.SetBytes(int64(len(pages) * 4096))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReaderOptions(bytes.NewReader(obj), ReaderOptions{Keys: keys})
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, _, err := r.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkSeal compares the two ways of encrypting a staged lz4 object:
// block for block (Seal, what uploads use) and through a Reader and a
// Writer (Transcode), which compresses every block again.
func BenchmarkSeal(b *testing.B) {
	pages := benchPages()
	obj := encode(b, segmentHeader(CompressionLZ4, 4096, uint32(len(pages)), pages), WriterOptions{}, pages)
	key := testKey(b, 7)
	for _, m := range []struct {
		name string
		fn   func(dst io.Writer, src io.Reader) error
	}{
		{"seal", func(dst io.Writer, src io.Reader) error { _, err := Seal(dst, src, key); return err }},
		{"transcode", func(dst io.Writer, src io.Reader) error {
			_, err := Transcode(dst, src, ReaderOptions{}, WriterOptions{Key: key})
			return err
		}},
	} {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(len(pages) * 4096))
			for b.Loop() {
				if err := m.fn(io.Discard, bytes.NewReader(obj)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
