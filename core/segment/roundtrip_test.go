package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		for _, ps := range []uint32{512, 4096, 65536} {
			maxBP := uint32(MaxBlockPages(ps))
			cases := []struct {
				name       string
				pgnos      []uint32
				dbSize     uint32
				blockPages int
				wantBlocks uint64
			}{
				{"one page", []uint32{1}, 1, 0, 1},
				{"one page far out", []uint32{1000}, 5000, 0, 1},
				{"sparse", []uint32{2, 3, 17, 400}, 401, 0, 1},
				{"exactly one block", seq(1, maxBP), maxBP, 0, 1},
				{"two blocks", seq(1, maxBP+1), maxBP * 3, 0, 2},
				{"one page per block", seq(5, 9), 9, 1, 5},
				{"three pages per block", seq(1, 10), 10, 3, 4},
				{"around the lock page", []uint32{LockPage(ps) - 1, LockPage(ps) + 1}, LockPage(ps) + 1, 0, 1},
			}
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%v/%d/%s", c, ps, tc.name), func(t *testing.T) {
					pages := makePages(ps, uint64(ps), tc.pgnos...)
					hdr := segmentHeader(c, ps, tc.dbSize, pages)
					obj := encode(t, hdr, WriterOptions{BlockPages: tc.blockPages}, pages)

					r, err := NewReader(bytes.NewReader(obj))
					if err != nil {
						t.Fatal(err)
					}
					if r.Header() != hdr {
						t.Fatalf("header:\n got %+v\nwant %+v", r.Header(), hdr)
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
					if r.nblock != tc.wantBlocks {
						t.Errorf("%d blocks, want %d", r.nblock, tc.wantBlocks)
					}
					// io.EOF is sticky.
					if _, _, err := r.Next(); err != io.EOF {
						t.Errorf("Next after EOF: %v", err)
					}
				})
			}
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		t.Run(c.String(), func(t *testing.T) {
			pages := makePages(4096, 3, seq(1, 700)...)
			hdr := snapshotHeader(c, 4096, pages)
			obj := encode(t, hdr, WriterOptions{}, pages)
			h, err := Verify(bytes.NewReader(obj))
			if err != nil {
				t.Fatal(err)
			}
			if h != hdr {
				t.Fatalf("header:\n got %+v\nwant %+v", h, hdr)
			}
			if c != CompressionNone && len(obj) > len(pages)*4096*3/4 {
				t.Errorf("%v: %d bytes for %d half-compressible pages; not compressing?", c, len(obj), len(pages))
			}
		})
	}
}

// TestIncompressible checks that a block that would grow is stored raw, and
// flagged, under every compression.
func TestIncompressible(t *testing.T) {
	noise := func(pgno uint32) []byte {
		b := make([]byte, 512)
		x := uint64(pgno) * 0x9e3779b97f4a7c15
		for i := range b {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			b[i] = byte(x)
		}
		return b
	}
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		t.Run(c.String(), func(t *testing.T) {
			pages := []page{{1, noise(1)}, {2, noise(2)}}
			obj := encode(t, segmentHeader(c, 512, 2, pages), WriterOptions{}, pages)
			word := binary.BigEndian.Uint32(obj[HeaderSize+4:])
			if word != storedRawFlag|2*516 {
				t.Fatalf("stored word %08x, want raw flag and length %d", word, 2*516)
			}
			_, got, err := decode(obj)
			if err != nil {
				t.Fatal(err)
			}
			equalPages(t, got, pages)
		})
	}
}

func TestWriterRejects(t *testing.T) {
	const ps = 4096
	lock := LockPage(ps)
	p := func(pgno uint32) page { return page{pgno, fillPage(ps, pgno, 1)} }
	cases := []struct {
		name   string
		hdr    func(*Header)
		pages  []page
		closed bool // error expected from Close, not WritePage
	}{
		{"short page", nil, []page{{1, make([]byte, ps-1)}}, false},
		{"long page", nil, []page{{1, make([]byte, ps+1)}}, false},
		{"pgno 0", nil, []page{p(0)}, false},
		{"descending", nil, []page{p(3), p(2)}, false},
		{"duplicate", nil, []page{p(3), p(3)}, false},
		{"beyond db size", func(h *Header) { h.DBSize = 5 }, []page{p(6)}, false},
		{"lock page", func(h *Header) { h.DBSize = lock + 1 }, []page{p(lock)}, false},
		{"more than page count", func(h *Header) { h.PageCount = 1 }, []page{p(1), p(2)}, false},
		{"fewer than page count", func(h *Header) { h.PageCount = 3 }, []page{p(1), p(2)}, true},
		{"snapshot checksum", func(h *Header) {
			h.Kind, h.MinTXID, h.DBSize, h.PageCount = KindSnapshot, h.MaxTXID, 2, 2
			h.FirstCommit, h.ChecksumBefore = h.LastCommit, h.ChecksumAfter
		}, []page{p(1), p(2)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := segmentHeader(CompressionLZ4, ps, 100, make([]page, 2))
			if tc.hdr != nil {
				tc.hdr(&hdr)
			}
			w, err := NewWriter(io.Discard, hdr, WriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			for _, pg := range tc.pages {
				if werr = w.WritePage(pg.pgno, pg.data); werr != nil {
					break
				}
			}
			cerr := w.Close()
			if tc.closed {
				if werr != nil || cerr == nil {
					t.Fatalf("WritePage: %v, Close: %v; want only Close to fail", werr, cerr)
				}
			} else if werr == nil {
				t.Fatal("WritePage accepted a bad page")
			} else if cerr != werr {
				t.Fatalf("Close after a failed WritePage returned %v, want the sticky %v", cerr, werr)
			}
			if errors.Is(werr, ErrCorrupt) || errors.Is(cerr, ErrCorrupt) {
				t.Fatal("caller mistakes must not be reported as corruption")
			}
		})
	}
}

func TestWriterLifecycle(t *testing.T) {
	pages := makePages(512, 1, 1, 2)
	hdr := segmentHeader(CompressionZstd, 512, 2, pages)

	if _, err := NewWriter(io.Discard, Header{}, WriterOptions{}); err == nil {
		t.Error("NewWriter accepted an invalid header")
	}
	if _, err := NewWriter(io.Discard, hdr, WriterOptions{BlockPages: MaxBlockPages(512) + 1}); err == nil {
		t.Error("NewWriter accepted too many pages per block")
	}
	if _, err := NewWriter(io.Discard, hdr, WriterOptions{BlockPages: -1}); err == nil {
		t.Error("NewWriter accepted negative pages per block")
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, hdr, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Header() != hdr {
		t.Error("Header() differs")
	}
	for _, p := range pages {
		if err := w.WritePage(p.pgno, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.WritePage(3, pages[0].data); err == nil {
		t.Error("WritePage after Close succeeded")
	}
	if _, err := Verify(&buf); err != nil {
		t.Fatal(err)
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		n := f.n
		f.n = 0
		return n, errors.New("disk full")
	}
	f.n -= len(b)
	return len(b), nil
}

func TestWriterIOError(t *testing.T) {
	pages := makePages(512, 1, seq(1, 10)...)
	hdr := segmentHeader(CompressionNone, 512, 10, pages)
	full := len(encode(t, hdr, WriterOptions{BlockPages: 2}, pages))
	for n := 0; n < full; n += 97 {
		w, err := NewWriter(&failWriter{n}, hdr, WriterOptions{BlockPages: 2})
		if err == nil {
			for _, p := range pages {
				if err = w.WritePage(p.pgno, p.data); err != nil {
					break
				}
			}
			if err == nil {
				err = w.Close()
			}
		}
		if err == nil || errors.Is(err, ErrCorrupt) {
			t.Fatalf("fail after %d bytes: got %v, want an I/O error", n, err)
		}
	}
}

// errReader returns its error after the data.
type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(b []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(b, e.data)
	e.data = e.data[n:]
	return n, nil
}

// TestReaderIOError checks that a failing source is reported as itself and
// not as corruption, so that callers retry instead of giving up on a copy.
func TestReaderIOError(t *testing.T) {
	pages := makePages(512, 1, seq(1, 10)...)
	obj := encode(t, segmentHeader(CompressionLZ4, 512, 10, pages), WriterOptions{BlockPages: 3}, pages)
	boom := errors.New("connection reset")
	for n := 0; n < len(obj); n += 13 {
		r, err := NewReader(&errReader{obj[:n], boom})
		for err == nil {
			_, _, err = r.Next()
		}
		if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("source failing after %d bytes: got %v", n, err)
		}
	}
}

// TestReset reuses one Writer and one Reader across objects of different
// compressions and page sizes: every object must come out byte for byte as
// a fresh Writer makes it, and read back whole.
func TestReset(t *testing.T) {
	var w *Writer
	var r *Reader
	for i, c := range []Compression{CompressionZstd, CompressionZstd, CompressionLZ4, CompressionNone, CompressionZstd} {
		ps := uint32(512) << (2 * (i % 3))
		pages := makePages(ps, uint64(i), seq(1, uint32(3+i*40))...)
		hdr := segmentHeader(c, ps, uint32(len(pages)), pages)
		want := encode(t, hdr, WriterOptions{BlockPages: 16}, pages)

		var buf bytes.Buffer
		if w == nil {
			var err error
			if w, err = NewWriter(&buf, hdr, WriterOptions{BlockPages: 16}); err != nil {
				t.Fatal(err)
			}
		} else if err := w.Reset(&buf, hdr); err != nil {
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
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("object %d: a reset Writer wrote different bytes", i)
		}

		if r == nil {
			var err error
			if r, err = NewReader(bytes.NewReader(want)); err != nil {
				t.Fatal(err)
			}
		} else if err := r.Reset(bytes.NewReader(want)); err != nil {
			t.Fatal(err)
		}
		if r.Header() != hdr {
			t.Fatalf("object %d: header %+v", i, r.Header())
		}
		n := 0
		for {
			pgno, p, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if pgno != pages[n].pgno || !bytes.Equal(p, pages[n].data) {
				t.Fatalf("object %d: page %d differs", i, n)
			}
			n++
		}
		if n != len(pages) {
			t.Fatalf("object %d: %d pages", i, n)
		}
	}
	// A failed Reset leaves both unusable rather than half set up.
	if err := w.Reset(io.Discard, Header{}); err == nil {
		t.Fatal("Writer.Reset accepted an invalid header")
	}
	if err := w.WritePage(1, make([]byte, 512)); err == nil {
		t.Fatal("WritePage after a failed Reset succeeded")
	}
	if err := r.Reset(bytes.NewReader(nil)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Reader.Reset on empty input: %v", err)
	}
	if _, _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next after a failed Reset: %v", err)
	}
}
