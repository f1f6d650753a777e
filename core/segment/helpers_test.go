package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// page is one page of test data.
type page struct {
	pgno uint32
	data []byte
}

// fillPage returns deterministic page content that compresses partly, as
// real SQLite pages do: a text-like run, then pseudo-random bytes. The
// generator is written out (xorshift64) so golden files never depend on a
// library's random stream.
func fillPage(pageSize, pgno uint32, seed uint64) []byte {
	b := make([]byte, pageSize)
	n := copy(b, fmt.Sprintf("page %d seed %d; ", pgno, seed))
	for i := n; i < len(b)/2; i++ {
		b[i] = "the quick brown fox jumps over the lazy dog "[i%44]
	}
	x := seed*0x9e3779b97f4a7c15 + uint64(pgno) + 1
	for i := len(b) / 2; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	return b
}

// makePages returns pages with the given numbers.
func makePages(pageSize uint32, seed uint64, pgnos ...uint32) []page {
	ps := make([]page, len(pgnos))
	for i, p := range pgnos {
		ps[i] = page{p, fillPage(pageSize, p, seed)}
	}
	return ps
}

// seq returns the numbers from..to inclusive.
func seq(from, to uint32) []uint32 {
	var s []uint32
	for p := from; p <= to; p++ {
		s = append(s, p)
	}
	return s
}

func sumPages(pages []page) Checksum {
	var c Checksum
	for _, p := range pages {
		c = c.AddPage(p.pgno, p.data)
	}
	return c
}

// segmentHeader returns a valid segment header for pages.
func segmentHeader(c Compression, pageSize, dbSize uint32, pages []page) Header {
	return Header{
		Kind:           KindSegment,
		Compression:    c,
		PageSize:       pageSize,
		Generation:     "0123456789abcdef",
		MinTXID:        7,
		MaxTXID:        9,
		DBSize:         dbSize,
		FirstCommit:    1_700_000_000_000_000_001,
		LastCommit:     1_700_000_000_500_000_000,
		ChecksumBefore: 0x1122334455667788,
		ChecksumAfter:  0x8877665544332211,
		PageCount:      uint32(len(pages)),
	}
}

// snapshotHeader returns a valid snapshot header for pages 1..len(pages).
func snapshotHeader(c Compression, pageSize uint32, pages []page) Header {
	sum := sumPages(pages)
	return Header{
		Kind:           KindSnapshot,
		Compression:    c,
		PageSize:       pageSize,
		Generation:     "gen-A_1",
		MinTXID:        42,
		MaxTXID:        42,
		DBSize:         uint32(len(pages)),
		FirstCommit:    -5, // before 1970 is allowed: clocks are clocks
		LastCommit:     -5,
		ChecksumBefore: sum,
		ChecksumAfter:  sum,
		PageCount:      uint32(len(pages)),
	}
}

// encode writes an object and fails the test on any error.
func encode(t testing.TB, hdr Header, opts WriterOptions, pages []page) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, hdr, opts)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	for _, p := range pages {
		if err := w.WritePage(p.pgno, p.data); err != nil {
			t.Fatalf("WritePage(%d): %v", p.pgno, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if w.Size() != int64(buf.Len()) {
		t.Fatalf("Size() = %d, wrote %d", w.Size(), buf.Len())
	}
	return buf.Bytes()
}

// decode reads a whole plaintext object, copying the pages.
func decode(data []byte) (Header, []page, error) {
	return decodeKeys(data, nil)
}

// decodeKeys reads a whole object with keys, copying the pages.
func decodeKeys(data []byte, keys *crypt.Keyring) (Header, []page, error) {
	r, err := NewReaderOptions(bytes.NewReader(data), ReaderOptions{Keys: keys})
	if err != nil {
		return Header{}, nil, err
	}
	var pages []page
	for {
		pgno, p, err := r.Next()
		if err == io.EOF {
			return r.Header(), pages, nil
		}
		if err != nil {
			return r.Header(), pages, err
		}
		pages = append(pages, page{pgno, bytes.Clone(p)})
	}
}

func equalPages(t *testing.T, got, want []page) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d pages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].pgno != want[i].pgno || !bytes.Equal(got[i].data, want[i].data) {
			t.Fatalf("page %d: got pgno %d (%d bytes), want pgno %d", i, got[i].pgno, len(got[i].data), want[i].pgno)
		}
	}
}

// forgedBlock is a block for forge: raw records, stored as given.
type forgedBlock struct {
	raw    []byte
	stored []byte // nil means store raw with the raw flag
	word   *uint32
	crc    *uint32
}

// records encodes pages as a block's raw bytes.
func records(pages []page) []byte {
	var b []byte
	for _, p := range pages {
		b = binary.BigEndian.AppendUint32(b, p.pgno)
		b = append(b, p.data...)
	}
	return b
}

// forge builds an object from a header encoding and blocks with correct
// CRCs and trailer hash, so a test can break exactly one rule and check
// that the Reader notices that rule, not a checksum.
func forge(hdr []byte, blocks ...forgedBlock) []byte {
	var b []byte
	b = append(b, hdr...)
	for _, blk := range blocks {
		stored, word := blk.stored, uint32(len(blk.stored))
		if stored == nil {
			stored, word = blk.raw, uint32(len(blk.raw))|storedRawFlag
		}
		if blk.word != nil {
			word = *blk.word
		}
		crc := crc32.Checksum(blk.raw, crcTable)
		if blk.crc != nil {
			crc = *blk.crc
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(blk.raw)))
		b = binary.BigEndian.AppendUint32(b, word)
		b = binary.BigEndian.AppendUint32(b, crc)
		b = append(b, stored...)
	}
	b = append(b, make([]byte, blockHeaderSize)...)
	b = binary.BigEndian.AppendUint64(b, xxhash.Sum64(b))
	return append(b, endMagic...)
}

// rawHeader encodes h without validating it.
func rawHeader(h Header) []byte {
	b := make([]byte, HeaderSize)
	putHeader(b, h)
	return b
}

// rehash recomputes the trailer hash of a complete object after a test
// changed bytes before it.
func rehash(obj []byte) []byte {
	obj = bytes.Clone(obj)
	n := len(obj) - 16
	binary.BigEndian.PutUint64(obj[n:], xxhash.Sum64(obj[:n]))
	return obj
}

func wantCorrupt(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: error %q does not wrap ErrCorrupt", what, err)
	}
}

func u32p(v uint32) *uint32 { return &v }
