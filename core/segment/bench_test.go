package segment

import (
	"bytes"
	"io"
	"testing"
)

// benchPages is 4 MiB of 4 KiB pages, half text-like and half random, so
// compressors have work of both kinds (see fillPage).
func benchPages() []page { return makePages(4096, 11, seq(1, 1024)...) }

func BenchmarkWrite(b *testing.B) {
	pages := benchPages()
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		b.Run(c.String(), func(b *testing.B) {
			hdr := segmentHeader(c, 4096, uint32(len(pages)), pages)
			var buf bytes.Buffer
			b.SetBytes(int64(len(pages) * 4096))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				w, err := NewWriter(&buf, hdr, WriterOptions{})
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
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		b.Run(c.String(), func(b *testing.B) {
			obj := encode(b, segmentHeader(c, 4096, uint32(len(pages)), pages), WriterOptions{}, pages)
			b.SetBytes(int64(len(pages) * 4096))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(obj))
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
