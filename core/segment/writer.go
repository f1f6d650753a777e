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

// WriterOptions configures a Writer.
type WriterOptions struct {
	// BlockPages caps the pages per block. 0 means MaxBlockPages(page
	// size), the right choice for replication; smaller blocks compress a
	// little worse and exist for tests and for future random access.
	BlockPages int
	// Key, when set, encrypts the object (scheme EncryptionAESGCM, see
	// "Encryption" in doc.go): the Writer sets the header's Encryption,
	// KeyID and a fresh random Salt, which Header then returns. nil writes
	// a plaintext object.
	Key *crypt.Key
}

// Writer streams an object to an io.Writer. It holds one block in memory,
// so its footprint does not depend on the object's size. A Writer is not
// safe for concurrent use.
//
// After any error the Writer is unusable and what it wrote must be thrown
// away: the object is incomplete, and no Reader will accept it.
type Writer struct {
	opts       WriterOptions
	dst        io.Writer
	hdr        Header
	blockPages int
	recSize    int
	lockPage   uint32

	raw    []byte // records of the pending block
	stored []byte // compressed form of the pending block
	sealed []byte // sealed form, when sealing

	digest  xxhash.Digest
	size    int64
	nblock  uint64
	written uint32
	last    uint32
	sum     Checksum // of the pages written, to check a snapshot's header

	comp   *compressor
	sealer blockSealer
	closed bool
	err    error
}

// NewWriter validates hdr, writes it to dst and returns a Writer for the
// hdr.PageCount pages that follow. The header's encryption fields come from
// opts.Key, not from hdr: a hdr that asks for encryption without a key is
// refused. Closing the Writer does not close dst.
func NewWriter(dst io.Writer, hdr Header, opts WriterOptions) (*Writer, error) {
	w := &Writer{opts: opts}
	if err := w.reset(dst, hdr); err != nil {
		return nil, err
	}
	return w, nil
}

// Reset starts a new object on dst, as NewWriter with the same options
// would, but keeps the Writer's buffers and, if the compression is the
// same, its compressor. A process that writes many small segments should
// reuse a Writer: a zstd encoder costs far more to set up than a small
// segment costs to compress. If Reset fails, the Writer stays unusable.
func (w *Writer) Reset(dst io.Writer, hdr Header) error {
	return w.reset(dst, hdr)
}

func (w *Writer) reset(dst io.Writer, hdr Header) error {
	// Only reusable state survives; everything else starts from zero.
	*w = Writer{
		opts:   w.opts,
		raw:    w.raw[:0],
		stored: w.stored[:0],
		sealed: w.sealed[:0],
		comp:   w.comp,
		closed: true, // until the header is out
	}
	w.err = w.start(dst, hdr)
	return w.err
}

func (w *Writer) start(dst io.Writer, hdr Header) error {
	if w.opts.Key != nil || hdr.Encryption == EncryptionNone {
		// The key decides; stale fields from a copied header must not
		// fail validation or leak into the new object.
		hdr.Encryption, hdr.KeyID, hdr.Salt = EncryptionNone, crypt.ID{}, [crypt.SaltSize]byte{}
	}
	if err := hdr.Validate(); err != nil {
		return err
	}
	sealer, err := writeSealer(w.opts.Key, &hdr)
	if err != nil {
		return err
	}
	maxPages := MaxBlockPages(hdr.PageSize)
	bp := w.opts.BlockPages
	if bp == 0 {
		bp = maxPages
	}
	if bp < 0 || bp > maxPages {
		return fmt.Errorf("segment: block pages %d is outside 1..%d for page size %d", bp, maxPages, hdr.PageSize)
	}
	if w.comp == nil || w.comp.c != hdr.Compression {
		comp, err := newCompressor(hdr.Compression)
		if err != nil {
			return err
		}
		w.comp = comp
	}
	w.dst, w.hdr, w.sealer = dst, hdr, sealer
	w.blockPages = bp
	w.recSize = 4 + int(hdr.PageSize)
	w.lockPage = LockPage(hdr.PageSize)
	w.digest.Reset()
	// Size the block buffer for this object: a one-page segment should not
	// cost a 1 MiB allocation.
	if need := min(bp, int(hdr.PageCount)) * w.recSize; cap(w.raw) < need {
		w.raw = make([]byte, 0, need)
	}
	var b [HeaderSize]byte
	putHeader(b[:], hdr)
	if err := w.write(b[:], true); err != nil {
		return err
	}
	w.closed = false
	return nil
}

// Header returns the header the Writer wrote: the one it was given, with
// the encryption fields set from WriterOptions.Key.
func (w *Writer) Header() Header { return w.hdr }

// Size returns how many bytes the Writer has written to dst so far; after a
// successful Close, the size of the object.
func (w *Writer) Size() int64 { return w.size }

// WritePage adds a page. Pages must come in strictly ascending pgno order,
// each in 1..hdr.DBSize and not the lock-byte page, with exactly
// hdr.PageSize bytes, and no more than hdr.PageCount of them. data is
// copied; the caller may reuse it at once.
func (w *Writer) WritePage(pgno uint32, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("segment: WritePage after Close")
	}
	var err error
	switch {
	case len(data) != int(w.hdr.PageSize):
		err = fmt.Errorf("page %d has %d bytes, want page size %d", pgno, len(data), w.hdr.PageSize)
	case pgno == 0:
		err = errors.New("page number 0")
	case pgno <= w.last:
		err = fmt.Errorf("page %d after page %d: pages must be strictly ascending", pgno, w.last)
	case pgno > w.hdr.DBSize:
		err = fmt.Errorf("page %d is beyond the database size %d", pgno, w.hdr.DBSize)
	case pgno == w.lockPage:
		err = fmt.Errorf("page %d is the lock-byte page, which SQLite never writes", pgno)
	case w.written >= w.hdr.PageCount:
		err = fmt.Errorf("page %d is one more than the header's page count %d", pgno, w.hdr.PageCount)
	}
	if err != nil {
		return w.fail(fmt.Errorf("segment: WritePage: %w", err))
	}
	w.raw = binary.BigEndian.AppendUint32(w.raw, pgno)
	w.raw = append(w.raw, data...)
	w.written++
	w.last = pgno
	if w.hdr.Kind == KindSnapshot {
		w.sum = w.sum.AddPage(pgno, data)
	}
	if len(w.raw) == w.blockPages*w.recSize {
		return w.flush()
	}
	return nil
}

// Close writes the last block, the terminator and the trailer. It fails,
// leaving an object no Reader accepts, if fewer pages than hdr.PageCount
// were written or if a snapshot's pages do not sum to hdr.ChecksumAfter.
// It does not close dst. Calling Close again returns the first result.
func (w *Writer) Close() error {
	if w.closed || w.err != nil {
		return w.err
	}
	w.closed = true
	if len(w.raw) > 0 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.written != w.hdr.PageCount {
		return w.fail(fmt.Errorf("segment: Close after %d pages, header promises %d", w.written, w.hdr.PageCount))
	}
	if w.hdr.Kind == KindSnapshot && w.sum != w.hdr.ChecksumAfter {
		return w.fail(fmt.Errorf("segment: snapshot pages sum to checksum %v, header says %v", w.sum, w.hdr.ChecksumAfter))
	}
	var t [TrailerSize]byte // the terminator is the leading zeros
	if err := w.write(t[:blockHeaderSize], true); err != nil {
		return err
	}
	binary.BigEndian.PutUint64(t[blockHeaderSize:], w.digest.Sum64())
	copy(t[blockHeaderSize+8:], endMagic)
	return w.write(t[blockHeaderSize:], false)
}

// flush compresses, seals and writes the pending block.
func (w *Writer) flush() error {
	raw := w.raw
	body, compressed := w.comp.compress(w.stored, raw)
	w.stored = body[:0]
	if !compressed {
		body = raw
	}
	if err := w.emit(raw, body, compressed); err != nil {
		return err
	}
	w.raw = w.raw[:0]
	return nil
}

// emit seals (or checksums) and writes one block whose records are raw and
// whose stored form, before sealing, is body.
func (w *Writer) emit(raw, body []byte, compressed bool) error {
	var bh [blockHeaderSize]byte
	if w.sealer != nil {
		w.sealed = w.sealer.Seal(w.sealed[:0], body, w.nblock, uint32(len(raw)), !compressed)
		body = w.sealed
		if len(body) > len(raw)+maxSealOverhead {
			return w.fail(fmt.Errorf("segment: sealer produced %d bytes for a %d-byte block", len(body), len(raw)))
		}
	} else {
		binary.BigEndian.PutUint32(bh[8:], crc32.Checksum(raw, crcTable))
	}
	word := uint32(len(body))
	if !compressed {
		word |= storedRawFlag
	}
	binary.BigEndian.PutUint32(bh[0:], uint32(len(raw)))
	binary.BigEndian.PutUint32(bh[4:], word)
	if err := w.write(bh[:], true); err != nil {
		return err
	}
	if err := w.write(body, true); err != nil {
		return err
	}
	w.nblock++
	return nil
}

// copyBlock writes a block that a Reader verified, keeping its stored
// (compressed) form: raw is its records, body its stored bytes. The
// Writer must have no pending page. Page accounting is as for WritePage,
// so Close still checks the count and a snapshot's checksum.
func (w *Writer) copyBlock(raw, body []byte, compressed bool) error {
	if w.err != nil {
		return w.err
	}
	if w.closed || len(w.raw) != 0 {
		return w.fail(errors.New("segment: copying a block into a closed Writer or after WritePage"))
	}
	for off := 0; off+w.recSize <= len(raw); off += w.recSize {
		pgno := binary.BigEndian.Uint32(raw[off:])
		if pgno <= w.last || w.written >= w.hdr.PageCount {
			return w.fail(fmt.Errorf("segment: copied block holds page %d after page %d (%d of %d pages)", pgno, w.last, w.written, w.hdr.PageCount))
		}
		w.written++
		w.last = pgno
		if w.hdr.Kind == KindSnapshot {
			w.sum = w.sum.AddPage(pgno, raw[off+4:off+w.recSize])
		}
	}
	return w.emit(raw, body, compressed)
}

// write writes b to dst, adding it to the trailer hash if hashed.
func (w *Writer) write(b []byte, hashed bool) error {
	if hashed {
		w.digest.Write(b)
	}
	n, err := w.dst.Write(b)
	w.size += int64(n)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return w.fail(fmt.Errorf("segment: writing at offset %d: %w", w.size, err))
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}
