package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// region names the part of an object an offset falls in, for messages.
func region(obj []byte, off int) string {
	switch {
	case off < HeaderSize:
		return "header"
	case off >= len(obj)-16:
		return "trailer"
	case off >= len(obj)-TrailerSize:
		return "terminator"
	}
	return "blocks"
}

// readAll decodes obj and returns the error that ended it (nil at io.EOF).
func readAll(obj []byte) error {
	return readAllWith(new(Reader), obj)
}

// readAllWith is readAll reusing r, which saves setting up a decompressor
// for each of the thousands of objects the corruption tests read.
func readAllWith(r *Reader, obj []byte) error {
	if err := r.Reset(bytes.NewReader(obj)); err != nil {
		return err
	}
	for {
		if _, _, err := r.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func corruptionSamples(t *testing.T) map[string][]byte {
	pages := makePages(512, 9, 1, 2, 3, 5, 8, 13)
	snap := makePages(512, 9, seq(1, 5)...)
	return map[string][]byte{
		"lz4":      encode(t, segmentHeader(CompressionLZ4, 512, 20, pages), WriterOptions{BlockPages: 2}, pages),
		"zstd":     encode(t, segmentHeader(CompressionZstd, 512, 20, pages), WriterOptions{BlockPages: 2}, pages),
		"none":     encode(t, segmentHeader(CompressionNone, 512, 20, pages), WriterOptions{BlockPages: 2}, pages),
		"snapshot": encode(t, snapshotHeader(CompressionLZ4, 512, snap), WriterOptions{BlockPages: 3}, snap),
	}
}

// TestTruncated cuts objects at every length short of complete: each must
// fail as corrupt, and never end in io.EOF as if complete.
func TestTruncated(t *testing.T) {
	for name, obj := range corruptionSamples(t) {
		t.Run(name, func(t *testing.T) {
			r := new(Reader)
			if err := readAllWith(r, obj); err != nil {
				t.Fatalf("intact object: %v", err)
			}
			for n := 0; n < len(obj); n++ {
				wantCorrupt(t, readAllWith(r, obj[:n]), fmt.Sprintf("truncated to %d bytes (in %s)", n, region(obj, n)))
			}
			wantCorrupt(t, readAll(append(bytes.Clone(obj), 0)), "one byte appended")
		})
	}
}

// TestBitFlips flips bits of objects: each flip must be detected. Every
// bit of the header, block headers, terminator and trailer is flipped; in
// block bodies, one bit per byte (rotating), which covers every byte and
// bit position at an eighth of the cost, so the test stays fast under
// -race. A flip in the version field may instead claim a newer version.
func TestBitFlips(t *testing.T) {
	for name, obj := range corruptionSamples(t) {
		t.Run(name, func(t *testing.T) {
			framing := framingBytes(obj)
			buf := bytes.Clone(obj)
			r := new(Reader)
			for off := range buf {
				for bit := 0; bit < 8; bit++ {
					if !framing[off] && bit != off%8 {
						continue
					}
					buf[off] ^= 1 << bit
					err := readAllWith(r, buf)
					buf[off] ^= 1 << bit
					if (off == 8 || off == 9) && errors.Is(err, errors.ErrUnsupported) {
						continue
					}
					wantCorrupt(t, err, fmt.Sprintf("bit %d of byte %d (in %s) flipped", bit, off, region(obj, off)))
				}
			}
		})
	}
}

// framingBytes marks the offsets of a valid object that are not block
// bodies: header, block headers, terminator and trailer.
func framingBytes(obj []byte) []bool {
	f := make([]bool, len(obj))
	mark := func(from, to int) {
		for i := from; i < to; i++ {
			f[i] = true
		}
	}
	mark(0, HeaderSize)
	off := HeaderSize
	for binary.BigEndian.Uint32(obj[off:]) != 0 {
		mark(off, off+blockHeaderSize)
		off += blockHeaderSize + int(binary.BigEndian.Uint32(obj[off+4:])&^storedRawFlag)
	}
	mark(off, len(obj))
	return f
}

// TestForged breaks one rule at a time in objects whose checksums are all
// correct, so each check is shown to exist on its own.
func TestForged(t *testing.T) {
	const ps = 512
	p := func(pgnos ...uint32) []byte { return records(makePages(ps, 1, pgnos...)) }
	hdr := func(c Compression, count uint32, edit ...func(*Header)) []byte {
		h := segmentHeader(c, ps, 20, make([]page, count))
		for _, e := range edit {
			e(&h)
		}
		return rawHeader(h)
	}
	comp := func(c Compression, raw []byte) []byte {
		cp, err := newCompressor(c)
		if err != nil {
			t.Fatal(err)
		}
		out, ok := cp.compress(nil, raw)
		if !ok {
			t.Fatal("test data did not compress")
		}
		return out
	}
	zeros := func(pgnos ...uint32) []byte {
		ps := make([]page, len(pgnos))
		for i, n := range pgnos {
			ps[i] = page{n, make([]byte, 512)}
		}
		return records(ps)
	}
	lock := LockPage(ps)
	snap := snapshotHeader(CompressionNone, ps, makePages(ps, 1, 1, 2))
	snap.ChecksumBefore++
	snap.ChecksumAfter++

	cases := []struct {
		name string
		obj  []byte
	}{
		{"descending in a block", forge(hdr(CompressionNone, 2), forgedBlock{raw: p(3, 2)})},
		{"descending across blocks", forge(hdr(CompressionNone, 2), forgedBlock{raw: p(5)}, forgedBlock{raw: p(3)})},
		{"duplicate in a block", forge(hdr(CompressionNone, 2), forgedBlock{raw: p(4, 4)})},
		{"duplicate across blocks", forge(hdr(CompressionNone, 2), forgedBlock{raw: p(5)}, forgedBlock{raw: p(5)})},
		{"pgno 0", forge(hdr(CompressionNone, 1), forgedBlock{raw: p(0)})},
		{"pgno beyond db size", forge(hdr(CompressionNone, 1), forgedBlock{raw: p(21)})},
		{"lock page", forge(hdr(CompressionNone, 1, func(h *Header) { h.DBSize = lock + 5 }), forgedBlock{raw: p(lock)})},
		{"fewer pages than header", forge(hdr(CompressionNone, 3), forgedBlock{raw: p(1, 2)})},
		{"more pages than header", forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1, 2)})},
		{"no blocks", forge(hdr(CompressionNone, 1))},
		{"raw length not whole records", forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1)[:515]})},
		{"raw length over bound", forge(hdr(CompressionNone, 3000, func(h *Header) { h.DBSize = 3000 }), forgedBlock{raw: p(seq(1, 2049)...)})},
		{"uncompressed length mismatch", forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1), word: u32p(storedRawFlag | 515)})},
		{"compressed block without compression", forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1), word: u32p(516)})},
		{"compressed length equals raw", forge(hdr(CompressionLZ4, 1), forgedBlock{raw: p(1), stored: p(1)})},
		{"compressed length 0", forge(hdr(CompressionLZ4, 1), forgedBlock{raw: p(1), stored: []byte{}})},
		{"bad block CRC", forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1), crc: u32p(1)})},
		{"lz4 garbage", forge(hdr(CompressionLZ4, 1), forgedBlock{raw: p(1), stored: bytes.Repeat([]byte{0xff}, 40)})},
		{"lz4 decodes short", forge(hdr(CompressionLZ4, 2), forgedBlock{raw: zeros(1, 2), stored: comp(CompressionLZ4, zeros(1))})},
		{"zstd garbage", forge(hdr(CompressionZstd, 1), forgedBlock{raw: p(1), stored: bytes.Repeat([]byte{0x28}, 40)})},
		{"lz4 decodes long", forge(hdr(CompressionLZ4, 1), forgedBlock{raw: zeros(1), stored: comp(CompressionLZ4, zeros(1, 2))})},
		{"zstd decodes short", forge(hdr(CompressionZstd, 2), forgedBlock{raw: p(1, 2), stored: comp(CompressionZstd, p(1))})},
		{"zstd decodes long", forge(hdr(CompressionZstd, 1), forgedBlock{raw: zeros(1), stored: comp(CompressionZstd, zeros(1, 2))})},
		{"snapshot checksum", forge(rawHeader(snap), forgedBlock{raw: p(1, 2)})},
		{"terminator fields", func() []byte {
			obj := forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1)})
			obj[len(obj)-TrailerSize+5] = 1
			return rehash(obj)
		}()},
		{"end magic", func() []byte {
			obj := forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1)})
			obj[len(obj)-1] = 'X'
			return obj
		}()},
		{"trailing data", append(forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1)}), 0)},
		{"trailer hash", func() []byte {
			obj := forge(hdr(CompressionNone, 1), forgedBlock{raw: p(1)})
			obj[len(obj)-9]++
			return obj
		}()},
		{"empty input", nil},
		{"header only", hdr(CompressionNone, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := readAll(tc.obj)
			wantCorrupt(t, err, tc.name)
			t.Log(err) // with -v, shows that the intended check fired
		})
	}

	// The forger itself must produce valid objects, or the cases above
	// could pass for the wrong reason.
	for _, c := range []Compression{CompressionLZ4, CompressionZstd} {
		ok := forge(hdr(c, 3), forgedBlock{raw: p(1, 2)}, forgedBlock{raw: p(3), stored: comp(c, p(3))})
		if err := readAll(ok); err != nil {
			t.Fatalf("forged valid %v object: %v", c, err)
		}
	}
}

// TestHugeLengths declares block lengths up to 4 GiB and checks that they
// are refused before anything of that size is allocated.
func TestHugeLengths(t *testing.T) {
	hdr := segmentHeader(CompressionLZ4, 512, 1<<30, nil)
	hdr.PageCount = 1 << 29
	h := rawHeader(hdr)
	for _, tc := range []struct{ raw, word uint32 }{
		{0xffffffff, 0x7fffffff},
		{516 * 8000, 100},
		{516, 0x7fffffff},
		{516, 0xffffffff},
		{516 * 2000, 516*2000 - 1}, // within bounds, then truncated
	} {
		obj := append(bytes.Clone(h), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		obj[HeaderSize+0] = byte(tc.raw >> 24)
		obj[HeaderSize+1] = byte(tc.raw >> 16)
		obj[HeaderSize+2] = byte(tc.raw >> 8)
		obj[HeaderSize+3] = byte(tc.raw)
		obj[HeaderSize+4] = byte(tc.word >> 24)
		obj[HeaderSize+5] = byte(tc.word >> 16)
		obj[HeaderSize+6] = byte(tc.word >> 8)
		obj[HeaderSize+7] = byte(tc.word)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := readAll(obj)
		runtime.ReadMemStats(&after)
		wantCorrupt(t, err, fmt.Sprintf("raw %#x stored word %#x", tc.raw, tc.word))
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 2*MaxBlockStoredSize {
			t.Errorf("raw %#x stored word %#x: allocated %d bytes", tc.raw, tc.word, grew)
		}
	}
}
