package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// maxFuzzInput bounds what the fuzzers feed a Reader; larger inputs add
// nothing a 1 MiB one cannot reach, since blocks are at most ~1 MiB.
const maxFuzzInput = 1 << 20

func addFuzzSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.s*"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	pages := makePages(512, 5, 1, 2, 3, 5, 8)
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		f.Add(encode(f, segmentHeader(c, 512, 10, pages), WriterOptions{BlockPages: 2}, pages))
		f.Add(encode(f, snapshotHeader(c, 512, pages[:3]), WriterOptions{}, pages[:3]))
		f.Add(encode(f, segmentHeader(c, 512, 10, pages), WriterOptions{BlockPages: 2, Key: fuzzKey(f)}, pages))
		f.Add(encode(f, snapshotHeader(c, 512, pages[:3]), WriterOptions{Key: fuzzKey(f)}, pages[:3]))
	}
}

// fuzzKey is the key the fuzzers' sealed seeds use and their Readers hold,
// so that mutations reach the opening of sealed blocks.
func fuzzKey(t testing.TB) *crypt.Key { return testKey(t, 0x5a) }

// FuzzReader feeds arbitrary bytes to a Reader holding fuzzKey and
// goldenKey: it must return pages that obey the format or an error wrapping
// ErrCorrupt (or ErrUnsupported for a newer version or an unknown
// encryption scheme, crypt.ErrWrongKey for an object sealed with another
// key), never panic, and never grow a buffer beyond the format's bounds. A
// complete valid object must survive being re-encoded.
func FuzzReader(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) <= maxFuzzInput {
			checkReader(t, data)
		}
	})
}

// FuzzReaderFixed is FuzzReader on inputs whose checksums are repaired
// first. Random mutations almost never keep a CRC valid, so without this
// the checks behind the checksums (page order, lengths, the decompressors
// on hostile input) would rarely be reached.
func FuzzReaderFixed(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) <= maxFuzzInput {
			checkReader(t, fixChecksums(data))
		}
	})
}

// fixChecksums returns data with its header CRC, block CRCs and trailer
// hash rewritten to match, as far as its structure can be followed.
func fixChecksums(data []byte) []byte {
	b := bytes.Clone(data)
	if len(b) < HeaderSize {
		return b
	}
	sealHeader(b)
	hdr, err := DecodeHeader(b)
	if err != nil {
		return b
	}
	dec, err := newDecompressor(hdr.Compression)
	if err != nil {
		return b
	}
	off := HeaderSize
	for off+blockHeaderSize <= len(b) {
		rawLen := binary.BigEndian.Uint32(b[off:])
		word := binary.BigEndian.Uint32(b[off+4:])
		if rawLen == 0 {
			end := off + blockHeaderSize
			if end+8 <= len(b) {
				binary.BigEndian.PutUint64(b[end:], xxhash.Sum64(b[:end]))
			}
			return b
		}
		storedLen := int(word &^ storedRawFlag)
		if rawLen > MaxBlockRawSize || storedLen > len(b)-off-blockHeaderSize {
			return b
		}
		if hdr.Encryption != EncryptionNone {
			// A sealed block's CRC is 0; only the key can fix its seal.
			binary.BigEndian.PutUint32(b[off+8:], 0)
			off += blockHeaderSize + storedLen
			continue
		}
		stored := b[off+blockHeaderSize : off+blockHeaderSize+storedLen]
		raw := stored
		if word&storedRawFlag == 0 {
			raw = make([]byte, rawLen)
			if dec.decompress(raw, stored) != nil {
				return b
			}
		}
		binary.BigEndian.PutUint32(b[off+8:], crc32.Checksum(raw, crcTable))
		off += blockHeaderSize + storedLen
	}
	return b
}

// checkReader asserts the Reader's contract on one input.
func checkReader(t *testing.T, data []byte) {
	keys := testKeyring(t, fuzzKey(t), goldenKey(t))
	r, err := NewReaderOptions(bytes.NewReader(data), ReaderOptions{Keys: keys})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, crypt.ErrWrongKey) {
			t.Fatalf("NewReader: unexpected error kind: %v", err)
		}
		return
	}
	hdr := r.Header()
	if err := hdr.Validate(); err != nil {
		t.Fatalf("NewReader accepted an invalid header: %v", err)
	}
	var pages []page
	var last uint32
	for {
		pgno, p, err := r.Next()
		if cap(r.rawBuf) > maxBlockRaw(hdr.PageSize) || cap(r.rawBuf) > MaxBlockRawSize ||
			cap(r.stored) > MaxBlockStoredSize {
			t.Fatalf("buffers beyond bounds: raw cap %d, stored cap %d", cap(r.rawBuf), cap(r.stored))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Next: error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(p) != int(hdr.PageSize) || pgno <= last || pgno > hdr.DBSize || pgno == LockPage(hdr.PageSize) {
			t.Fatalf("bad page: pgno %d (after %d), %d bytes, header %+v", pgno, last, len(p), hdr)
		}
		last = pgno
		pages = append(pages, page{pgno, bytes.Clone(p)})
	}
	if uint32(len(pages)) != hdr.PageCount {
		t.Fatalf("EOF after %d pages, header says %d", len(pages), hdr.PageCount)
	}
	var opts WriterOptions
	if hdr.Encryption != EncryptionNone {
		opts.Key = keys.Lookup(hdr.KeyID)
	}
	gotHdr, got, err := decodeKeys(encode(t, hdr, opts, pages), keys)
	gotHdr.Salt = hdr.Salt // a new object gets a new salt
	if err != nil || gotHdr != hdr {
		t.Fatalf("re-encoding a valid object: %v", err)
	}
	equalPages(t, got, pages)
}

// FuzzDecodeHeader checks that the header encoding is canonical: whatever
// DecodeHeader accepts, EncodeHeader reproduces byte for byte.
func FuzzDecodeHeader(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeHeader(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		b, err := EncodeHeader(h)
		if err != nil {
			t.Fatalf("decoded header does not encode: %v", err)
		}
		if !bytes.Equal(b, data[:HeaderSize]) {
			t.Fatalf("header not canonical:\n in % x\nout % x", data[:HeaderSize], b)
		}
	})
}
