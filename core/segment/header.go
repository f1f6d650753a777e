package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// Header is the metadata at the start of every object. Its encoding is
// described in doc.go.
type Header struct {
	Kind        Kind
	Compression Compression
	// Encryption is the scheme that sealed the blocks: EncryptionNone or
	// EncryptionAESGCM. A Writer sets it, KeyID and Salt from
	// WriterOptions.Key, and refuses a header that asks for encryption
	// when it has no key.
	Encryption uint8
	// KeyID names the key that sealed the blocks, and Salt is the random
	// per-object salt its object key was derived with; both zero when
	// Encryption is EncryptionNone.
	KeyID crypt.ID
	Salt  [crypt.SaltSize]byte
	// PageSize is the database page size in bytes.
	PageSize uint32
	// Generation names the chain of transactions the object belongs to.
	Generation string
	// MinTXID and MaxTXID are the first and last transaction held; equal
	// for a snapshot.
	MinTXID, MaxTXID uint64
	// DBSize is the database size in pages after transaction MaxTXID.
	DBSize uint32
	// FirstCommit and LastCommit are the commit times of transactions
	// MinTXID and MaxTXID in unix nanoseconds. Integers, not time.Time, so
	// that a header round-trips exactly.
	FirstCommit, LastCommit int64
	// ChecksumBefore and ChecksumAfter are the database checksums before
	// transaction MinTXID and after transaction MaxTXID.
	ChecksumBefore, ChecksumAfter Checksum
	// PageCount is the number of pages in the body.
	PageCount uint32
}

// FirstCommitTime returns FirstCommit as a time.Time.
func (h Header) FirstCommitTime() time.Time { return time.Unix(0, h.FirstCommit) }

// LastCommitTime returns LastCommit as a time.Time.
func (h Header) LastCommitTime() time.Time { return time.Unix(0, h.LastCommit) }

// Validate reports whether h describes an object this version can encode:
// every rule of doc.go that concerns the header alone. An unknown
// encryption scheme is not an error, so that headers of objects sealed by
// a later version can still be listed; a Reader refuses to open them.
func (h Header) Validate() error {
	if err := h.validate(); err != nil {
		return fmt.Errorf("segment: invalid header: %w", err)
	}
	return nil
}

func (h Header) validate() error {
	if h.Kind != KindSegment && h.Kind != KindSnapshot {
		return fmt.Errorf("unknown kind %d", uint8(h.Kind))
	}
	if !h.Compression.valid() {
		return fmt.Errorf("unknown compression %d", uint8(h.Compression))
	}
	if h.Encryption == EncryptionNone && (h.KeyID != crypt.ID{} || h.Salt != [crypt.SaltSize]byte{}) {
		return errors.New("key id or salt in an object that is not encrypted")
	}
	if !validPageSize(h.PageSize) {
		return fmt.Errorf("page size %d is not a power of two in %d..%d", h.PageSize, MinPageSize, MaxPageSize)
	}
	if err := ValidateGeneration(h.Generation); err != nil {
		return err
	}
	if h.MinTXID == 0 {
		return errors.New("min txid is 0")
	}
	if h.MinTXID > h.MaxTXID {
		return fmt.Errorf("min txid %d > max txid %d", h.MinTXID, h.MaxTXID)
	}
	// A transaction always writes at least one page (its commit frame), so
	// an empty object can only come from a bug; refusing it keeps "every
	// object has a block" true for readers.
	if h.PageCount == 0 {
		return errors.New("page count is 0")
	}
	if max := dataPages(h.PageSize, h.DBSize); h.PageCount > max {
		return fmt.Errorf("page count %d exceeds the %d pages a database of %d pages can hold", h.PageCount, max, h.DBSize)
	}
	if h.Kind == KindSnapshot {
		switch {
		case h.MinTXID != h.MaxTXID:
			return fmt.Errorf("snapshot spans txids %d..%d", h.MinTXID, h.MaxTXID)
		case h.FirstCommit != h.LastCommit:
			return errors.New("snapshot has two commit times")
		case h.ChecksumBefore != h.ChecksumAfter:
			return errors.New("snapshot has two checksums")
		case h.PageCount != dataPages(h.PageSize, h.DBSize):
			return fmt.Errorf("snapshot of a %d-page database holds %d pages, want %d",
				h.DBSize, h.PageCount, dataPages(h.PageSize, h.DBSize))
		}
	}
	return nil
}

// EncodeHeader returns the HeaderSize-byte encoding of h, or an error if h
// does not validate.
func EncodeHeader(h Header) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, HeaderSize)
	putHeader(b, h)
	return b, nil
}

// putHeader encodes h into b[:HeaderSize] without validating it; tests use
// it to build headers that are invalid on purpose.
func putHeader(b []byte, h Header) {
	b = b[:HeaderSize]
	clear(b)
	copy(b[0:8], magic)
	binary.BigEndian.PutUint16(b[8:], Version)
	b[10] = byte(h.Kind)
	b[11] = byte(h.Compression)
	b[12] = h.Encryption
	b[13] = byte(len(h.Generation))
	binary.BigEndian.PutUint32(b[16:], h.PageSize)
	binary.BigEndian.PutUint32(b[20:], h.DBSize)
	binary.BigEndian.PutUint32(b[24:], h.PageCount)
	copy(b[28:32], h.KeyID[:])
	copy(b[32:32+MaxGenerationLen], h.Generation)
	binary.BigEndian.PutUint64(b[64:], h.MinTXID)
	binary.BigEndian.PutUint64(b[72:], h.MaxTXID)
	binary.BigEndian.PutUint64(b[80:], uint64(h.FirstCommit))
	binary.BigEndian.PutUint64(b[88:], uint64(h.LastCommit))
	binary.BigEndian.PutUint64(b[96:], uint64(h.ChecksumBefore))
	binary.BigEndian.PutUint64(b[104:], uint64(h.ChecksumAfter))
	copy(b[112:124], h.Salt[:])
	sealHeader(b)
}

// sealHeader stores the CRC of b[:124] in b[124:128].
func sealHeader(b []byte) {
	binary.BigEndian.PutUint32(b[HeaderSize-4:], crc32.Checksum(b[:HeaderSize-4], crcTable))
}

// DecodeHeader decodes and verifies the header at the start of b, which must
// hold at least HeaderSize bytes; bytes after the header are ignored, so b
// may be a longer ranged read. Damage is reported as ErrCorrupt, a version
// newer than this package as errors.ErrUnsupported.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, corruptf("header truncated: %d of %d bytes", len(b), HeaderSize)
	}
	b = b[:HeaderSize]
	if string(b[0:8]) != magic {
		return Header{}, corruptf("bad magic %q", b[0:8])
	}
	// The version is checked before the CRC: a later version may put its
	// CRC elsewhere, and its objects deserve "upgrade", not "corrupt".
	switch v := binary.BigEndian.Uint16(b[8:]); {
	case v == 0:
		return Header{}, corruptf("format version 0")
	case v > Version:
		return Header{}, fmt.Errorf("segment: format version %d is newer than %d (or the header is damaged): %w",
			v, Version, errors.ErrUnsupported)
	}
	want := binary.BigEndian.Uint32(b[HeaderSize-4:])
	if got := crc32.Checksum(b[:HeaderSize-4], crcTable); got != want {
		return Header{}, corruptf("header CRC %08x, stored %08x", got, want)
	}
	genLen := int(b[13])
	if genLen > MaxGenerationLen {
		return Header{}, corruptf("generation length %d > %d", genLen, MaxGenerationLen)
	}
	if !allZero(b[14:16]) || !allZero(b[32+genLen:64]) {
		return Header{}, corruptf("nonzero reserved or padding bytes in header")
	}
	h := Header{
		Kind:           Kind(b[10]),
		Compression:    Compression(b[11]),
		Encryption:     b[12],
		PageSize:       binary.BigEndian.Uint32(b[16:]),
		DBSize:         binary.BigEndian.Uint32(b[20:]),
		PageCount:      binary.BigEndian.Uint32(b[24:]),
		Generation:     string(b[32 : 32+genLen]),
		MinTXID:        binary.BigEndian.Uint64(b[64:]),
		MaxTXID:        binary.BigEndian.Uint64(b[72:]),
		FirstCommit:    int64(binary.BigEndian.Uint64(b[80:])),
		LastCommit:     int64(binary.BigEndian.Uint64(b[88:])),
		ChecksumBefore: Checksum(binary.BigEndian.Uint64(b[96:])),
		ChecksumAfter:  Checksum(binary.BigEndian.Uint64(b[104:])),
	}
	copy(h.KeyID[:], b[28:32])
	copy(h.Salt[:], b[112:124])
	if err := h.validate(); err != nil {
		return Header{}, fmt.Errorf("%w: header: %w", ErrCorrupt, err)
	}
	return h, nil
}

// ReadHeader reads and verifies just the header of an object from src, for
// listing metadata with a ranged read of the first HeaderSize bytes. It
// does not verify the rest of the object.
func ReadHeader(src io.Reader) (Header, error) {
	var b [HeaderSize]byte
	if n, err := io.ReadFull(src, b[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Header{}, corruptf("header truncated: %d of %d bytes", n, HeaderSize)
		}
		return Header{}, fmt.Errorf("segment: reading header: %w", err)
	}
	return DecodeHeader(b[:])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
