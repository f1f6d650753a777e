package segment

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// ErrCorrupt is wrapped by every error that reports an object violating the
// format: truncation, checksum mismatch, impossible field values. Callers
// test for it with errors.Is to tell a damaged object (do not retry, try
// another copy) from an I/O error of the source (retry).
var ErrCorrupt = errors.New("segment: corrupt object")

// Format constants. They are part of the on-disk spec in doc.go; changing
// any of them is a format change and needs a new version.
const (
	// Version is the format version this package writes and reads.
	Version = 1

	// HeaderSize is the fixed size of the header that starts every object.
	HeaderSize = 128

	// MinPageSize and MaxPageSize bound the page size, as SQLite does.
	MinPageSize = 512
	MaxPageSize = 65536

	// MaxGenerationLen is the longest generation id a header can hold.
	MaxGenerationLen = 32

	// blockTarget is the raw payload that one block aims for. It bounds the
	// memory a Reader or Writer needs independently of the object's size.
	blockTarget = 1 << 20

	// MaxBlockRawSize is the largest raw length a block may declare for any
	// page size: MaxBlockPages(512) records of 4+512 bytes. Readers reject a
	// larger declared length before allocating.
	MaxBlockRawSize = (blockTarget / MinPageSize) * (4 + MinPageSize)

	// maxSealOverhead is how much a sealer may add to a stored block
	// (nonce and tag). It is in the format so that readers can bound the
	// stored length of a sealed block.
	maxSealOverhead = 256

	// MaxBlockStoredSize is the largest stored length a block may declare.
	MaxBlockStoredSize = MaxBlockRawSize + maxSealOverhead

	// blockHeaderSize is the size of a block's length/CRC prefix, and of
	// the terminator, which is an all-zero block header.
	blockHeaderSize = 12

	// TrailerSize is the size of the terminator plus the trailer.
	TrailerSize = blockHeaderSize + 8 + 8

	// storedRawFlag marks, in a block's stored word, a block stored
	// uncompressed.
	storedRawFlag = 1 << 31

	magic    = "\x89RPLSEG\n"
	endMagic = "\x89RPLEND\n"

	// lockByteOffset is the file offset SQLite uses for its lock bytes;
	// the page containing it is never written.
	lockByteOffset = 1 << 30
)

// crcTable is the CRC-32C table, computed once and never written after.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// MaxBlockPages returns how many pages one block of an object with the given
// page size may hold: as many as fit in 1 MiB, at least one.
func MaxBlockPages(pageSize uint32) int {
	if pageSize == 0 || pageSize >= blockTarget {
		return 1
	}
	return blockTarget / int(pageSize)
}

// maxBlockRaw is the raw length bound for one page size.
func maxBlockRaw(pageSize uint32) int {
	return MaxBlockPages(pageSize) * (4 + int(pageSize))
}

// LockPage returns the page number of SQLite's lock-byte page for a page
// size: the page holding file offset 2^30. SQLite never writes it, so it is
// in no segment and no database checksum. It returns 0 (no page) for an
// invalid page size.
func LockPage(pageSize uint32) uint32 {
	if !validPageSize(pageSize) {
		return 0
	}
	return lockByteOffset/pageSize + 1
}

// dataPages returns how many pages other than the lock-byte page a database
// of dbSize pages has: the page count of its snapshot.
func dataPages(pageSize, dbSize uint32) uint32 {
	if lp := LockPage(pageSize); lp != 0 && dbSize >= lp {
		return dbSize - 1
	}
	return dbSize
}

func validPageSize(n uint32) bool {
	return n >= MinPageSize && n <= MaxPageSize && n&(n-1) == 0
}

// Kind tells a segment from a snapshot.
type Kind uint8

const (
	KindSegment  Kind = 1 // changes of one or more transactions
	KindSnapshot Kind = 2 // every page of the database at one txid
)

func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "segment"
	case KindSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Compression selects how the blocks of an object are compressed. The zero
// value is CompressionNone, which is valid; DefaultCompression is what a
// replica should use unless configured otherwise.
type Compression uint8

const (
	CompressionNone Compression = 0
	CompressionLZ4  Compression = 1
	CompressionZstd Compression = 2

	// DefaultCompression is lz4: it compresses SQLite pages well enough at
	// several GB/s, so it never slows down replication.
	DefaultCompression = CompressionLZ4
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

func (c Compression) valid() bool { return c <= CompressionZstd }

// ParseCompression parses "none", "lz4" or "zstd" (case-insensitive); the
// empty string means DefaultCompression, so that an unset configuration
// field picks the default.
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return DefaultCompression, nil
	case "none":
		return CompressionNone, nil
	case "lz4":
		return CompressionLZ4, nil
	case "zstd":
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("segment: unknown compression %q (want none, lz4 or zstd)", s)
}

// MarshalText implements encoding.TextMarshaler, for configuration files.
func (c Compression) MarshalText() ([]byte, error) {
	if !c.valid() {
		return nil, fmt.Errorf("segment: cannot marshal %v", c)
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseCompression.
func (c *Compression) UnmarshalText(b []byte) error {
	v, err := ParseCompression(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// corruptf returns an error wrapping ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
