package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cespare/xxhash/v2"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// Reader streams the pages of an object from an io.Reader, verifying as it
// goes. It holds one block in memory, so its footprint does not depend on
// the object's size. A Reader is not safe for concurrent use.
//
// Each page Next returns has passed its block's CRC and the format's rules,
// but the object as a whole is verified only when Next returns io.EOF. A
// caller that applies pages as they come (a restore) must treat them as
// tentative until then, and discard its work if Next fails instead.
type Reader struct {
	src     io.Reader
	hdr     Header
	recSize int
	maxRaw  int

	digest xxhash.Digest
	off    int64 // bytes consumed from src

	raw    []byte // records of the current block
	pos    int    // offset of the next record in raw
	rawBuf []byte // decompression buffer raw points into
	stored []byte // stored bytes of the current block
	opened []byte // opened bytes, when sealed
	// body is the current block's stored form after opening (compressed
	// when compressed is set), for Seal.
	body       []byte
	compressed bool

	nblock uint64
	pages  uint32 // pages in the blocks decoded so far
	last   uint32
	sum    Checksum // of the pages read, to check a snapshot

	dec    *decompressor
	keys   *crypt.Keyring
	sealer blockSealer
	err    error // sticky; io.EOF once the trailer verified
}

// ReaderOptions configures a Reader.
type ReaderOptions struct {
	// Keys opens encrypted objects: the key whose id the header names is
	// used. nil reads only plaintext objects. Plaintext objects are read
	// with or without keys.
	Keys *crypt.Keyring
}

// NewReader reads and verifies the header of a plaintext object from src.
// It is NewReaderOptions without keys: an encrypted object is refused with
// an error wrapping crypt.ErrKeyRequired.
func NewReader(src io.Reader) (*Reader, error) {
	return NewReaderOptions(src, ReaderOptions{})
}

// NewReaderOptions reads and verifies the header of an object from src. An
// encrypted object whose key is not in opts.Keys is refused with an error
// wrapping crypt.ErrKeyRequired (no keys) or crypt.ErrWrongKey, which says
// which key it needs; an unknown scheme with errors.ErrUnsupported.
func NewReaderOptions(src io.Reader, opts ReaderOptions) (*Reader, error) {
	r := &Reader{keys: opts.Keys}
	if err := r.reset(src); err != nil {
		return nil, err
	}
	return r, nil
}

// Reset starts reading a new object from src, as NewReaderOptions with the
// same options would, but keeps the Reader's buffers and, if the
// compression is the same, its decompressor. If Reset fails, the Reader
// returns that error from Next.
func (r *Reader) Reset(src io.Reader) error {
	return r.reset(src)
}

func (r *Reader) reset(src io.Reader) error {
	*r = Reader{
		src:    src,
		rawBuf: r.rawBuf,
		stored: r.stored,
		opened: r.opened,
		dec:    r.dec,
		keys:   r.keys,
	}
	r.err = r.start()
	return r.err
}

func (r *Reader) start() error {
	r.digest.Reset()
	var b [HeaderSize]byte
	if err := r.readFull(b[:], true, "header"); err != nil {
		return err
	}
	hdr, err := DecodeHeader(b[:])
	if err != nil {
		return err
	}
	sealer, err := readSealer(r.keys, hdr)
	if err != nil {
		return err
	}
	if r.dec == nil || r.dec.c != hdr.Compression {
		if r.dec, err = newDecompressor(hdr.Compression); err != nil {
			return err
		}
	}
	r.hdr = hdr
	r.recSize = 4 + int(hdr.PageSize)
	r.maxRaw = maxBlockRaw(hdr.PageSize)
	r.sealer = sealer
	return nil
}

// Header returns the verified header.
func (r *Reader) Header() Header { return r.hdr }

// Next returns the next page in ascending pgno order. page is hdr.PageSize
// bytes long and valid until the next call to Next. At the end of the
// object Next verifies the trailer and returns io.EOF, and only then; any
// damage is an error wrapping ErrCorrupt. Errors are sticky.
func (r *Reader) Next() (pgno uint32, page []byte, err error) {
	for r.pos >= len(r.raw) {
		if r.err != nil {
			return 0, nil, r.err
		}
		if err := r.readBlock(); err != nil {
			r.err = err
			r.raw, r.pos = nil, 0
			return 0, nil, err
		}
	}
	rec := r.raw[r.pos : r.pos+r.recSize]
	r.pos += r.recSize
	return binary.BigEndian.Uint32(rec), rec[4:], nil
}

// readBlock reads and verifies the next block, or the trailer, in which case
// it returns io.EOF. Every length is checked before anything is allocated.
func (r *Reader) readBlock() error {
	start := r.off
	var bh [blockHeaderSize]byte
	if err := r.readFull(bh[:], true, "block header"); err != nil {
		return err
	}
	rawLen := binary.BigEndian.Uint32(bh[0:])
	word := binary.BigEndian.Uint32(bh[4:])
	crc := binary.BigEndian.Uint32(bh[8:])
	if rawLen == 0 {
		return r.readTrailer(start, word, crc)
	}
	at := func(format string, args ...any) error {
		return corruptf("block %d at offset %d: %s", r.nblock, start, fmt.Sprintf(format, args...))
	}
	if rawLen > uint32(r.maxRaw) || rawLen%uint32(r.recSize) != 0 {
		return at("raw length %d: want a positive multiple of %d, at most %d", rawLen, r.recSize, r.maxRaw)
	}
	n := rawLen / uint32(r.recSize)
	if left := r.hdr.PageCount - r.pages; n > left {
		return at("%d pages, but only %d of the header's %d remain", n, left, r.hdr.PageCount)
	}
	plain := word&storedRawFlag != 0
	storedLen := word &^ storedRawFlag
	if err := r.checkStored(rawLen, storedLen, plain, crc); err != nil {
		return at("%v", err)
	}

	r.stored = grow(r.stored, int(storedLen), MaxBlockStoredSize)
	if err := r.readFull(r.stored, true, "block body"); err != nil {
		return err
	}
	body := r.stored
	if r.sealer != nil {
		var err error
		if r.opened, err = r.sealer.Open(r.opened[:0], body, r.nblock, rawLen, plain); err != nil {
			return at("cannot open sealed block: %v", err)
		}
		body = r.opened
		if !plain && (len(body) == 0 || len(body) >= int(rawLen)) {
			return at("compressed length %d for raw length %d", len(body), rawLen)
		}
	}
	var raw []byte
	if plain {
		if len(body) != int(rawLen) {
			return at("uncompressed block of %d bytes, raw length %d", len(body), rawLen)
		}
		raw = body
	} else {
		r.rawBuf = grow(r.rawBuf, int(rawLen), r.maxRaw)
		if err := r.dec.decompress(r.rawBuf, body); err != nil {
			return at("%v", err)
		}
		raw = r.rawBuf
	}
	if r.sealer == nil {
		if got := crc32.Checksum(raw, crcTable); got != crc {
			return at("CRC %08x, stored %08x", got, crc)
		}
	}
	if err := r.checkRecords(raw); err != nil {
		return at("%v", err)
	}
	r.raw, r.pos = raw, 0
	r.body, r.compressed = body, !plain
	r.nblock++
	r.pages += n
	return nil
}

// checkStored applies the stored-length rules of doc.go.
func (r *Reader) checkStored(rawLen, storedLen uint32, plain bool, crc uint32) error {
	if r.hdr.Encryption != 0 {
		if storedLen == 0 || storedLen > rawLen+maxSealOverhead {
			return fmt.Errorf("sealed length %d for raw length %d", storedLen, rawLen)
		}
		if crc != 0 {
			return errors.New("sealed block with a nonzero CRC")
		}
		if !plain && r.hdr.Compression == CompressionNone {
			return errors.New("compressed block in an uncompressed object")
		}
		return nil
	}
	switch {
	case plain && storedLen != rawLen:
		return fmt.Errorf("uncompressed block stores %d bytes, raw length %d", storedLen, rawLen)
	case !plain && r.hdr.Compression == CompressionNone:
		return errors.New("compressed block in an uncompressed object")
	case !plain && (storedLen == 0 || storedLen >= rawLen):
		return fmt.Errorf("compressed length %d for raw length %d", storedLen, rawLen)
	}
	return nil
}

// checkRecords verifies the page numbers of a block before any of its pages
// is handed out, and adds a snapshot's pages to its checksum.
func (r *Reader) checkRecords(raw []byte) error {
	lockPage := LockPage(r.hdr.PageSize)
	for off := 0; off < len(raw); off += r.recSize {
		pgno := binary.BigEndian.Uint32(raw[off:])
		switch {
		case pgno == 0:
			return errors.New("page number 0")
		case pgno <= r.last:
			return fmt.Errorf("page %d after page %d: not strictly ascending", pgno, r.last)
		case pgno > r.hdr.DBSize:
			return fmt.Errorf("page %d beyond the database size %d", pgno, r.hdr.DBSize)
		case pgno == lockPage:
			return fmt.Errorf("page %d is the lock-byte page", pgno)
		}
		r.last = pgno
		if r.hdr.Kind == KindSnapshot {
			r.sum = r.sum.AddPage(pgno, raw[off+4:off+r.recSize])
		}
	}
	return nil
}

// readTrailer verifies the terminator's other fields, the trailer and the
// end of the source, and returns io.EOF if all is well.
func (r *Reader) readTrailer(start int64, word, crc uint32) error {
	if word != 0 || crc != 0 {
		return corruptf("terminator at offset %d has nonzero fields", start)
	}
	if r.pages != r.hdr.PageCount {
		return corruptf("object ends after %d pages, header promises %d", r.pages, r.hdr.PageCount)
	}
	want := r.digest.Sum64()
	var t [16]byte
	if err := r.readFull(t[:], false, "trailer"); err != nil {
		return err
	}
	if string(t[8:]) != endMagic {
		return corruptf("bad end magic %q at offset %d", t[8:], r.off-8)
	}
	if got := binary.BigEndian.Uint64(t[:]); got != want {
		return corruptf("object hash %016x, trailer says %016x", want, got)
	}
	if r.hdr.Kind == KindSnapshot && r.sum != r.hdr.ChecksumAfter {
		return corruptf("snapshot pages sum to checksum %v, header says %v", r.sum, r.hdr.ChecksumAfter)
	}
	var extra [1]byte
	switch _, err := io.ReadFull(r.src, extra[:]); err {
	case io.EOF:
		return io.EOF
	case nil:
		return corruptf("data after the trailer at offset %d", r.off)
	default:
		return fmt.Errorf("segment: reading past the trailer at offset %d: %w", r.off, err)
	}
}

// readFull fills b from src. Running out of input is corruption (an object
// is never shorter than its format says); other errors are the source's.
func (r *Reader) readFull(b []byte, hashed bool, what string) error {
	n, err := io.ReadFull(r.src, b)
	if hashed {
		r.digest.Write(b[:n])
	}
	r.off += int64(n)
	switch err {
	case nil:
		return nil
	case io.EOF, io.ErrUnexpectedEOF:
		return corruptf("truncated in %s at offset %d", what, r.off)
	}
	return fmt.Errorf("segment: reading %s at offset %d: %w", what, r.off, err)
}

// Verify reads a whole plaintext object from src and returns its header if
// every check passes. It is what a scrubber or "verify" command needs.
func Verify(src io.Reader) (Header, error) {
	return VerifyOptions(src, ReaderOptions{})
}

// VerifyOptions is Verify for objects that may be encrypted: opts.Keys
// must hold the key of an encrypted object.
func VerifyOptions(src io.Reader, opts ReaderOptions) (Header, error) {
	r, err := NewReaderOptions(src, opts)
	if err != nil {
		return Header{}, err
	}
	for {
		if _, _, err := r.Next(); err != nil {
			if err == io.EOF {
				return r.hdr, nil
			}
			return Header{}, err
		}
	}
}
