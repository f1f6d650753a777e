package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sizes and constants of the WAL format. They are fixed by SQLite's on-disk
// format (sqlite.org/fileformat2.html §4) and never change between versions.
const (
	// HeaderSize is the size of the WAL header at offset 0 of the file.
	HeaderSize = 32
	// FrameHeaderSize is the size of the header that precedes each page image.
	FrameHeaderSize = 24

	// MagicLE is the magic number of a WAL whose checksums read the data as
	// little-endian 32-bit words (what SQLite writes on little-endian hosts).
	MagicLE = 0x377f0682
	// MagicBE is the magic number of a WAL whose checksums read the data as
	// big-endian 32-bit words (what SQLite writes on big-endian hosts).
	MagicBE = 0x377f0683
	// Version is the only WAL format version SQLite has ever written or
	// accepts (3.7.0); anything else is not a WAL we understand.
	Version = 3007000

	// MinPageSize and MaxPageSize bound the page size stored in the header.
	// Unlike the database header, the WAL header stores 65536 literally.
	MinPageSize = 512
	MaxPageSize = 65536
)

// ErrBadHeader is wrapped by every error that rejects the bytes of a WAL
// header. SQLite treats a WAL with an invalid header as empty (and rewrites
// it on the next write), so callers should too: there is no valid log.
var ErrBadHeader = errors.New("wal: invalid header")

// Header is the decoded 32-byte WAL header. All fields are stored big-endian
// on disk regardless of the checksum byte order chosen by Magic.
type Header struct {
	Magic         uint32 // MagicLE or MagicBE: selects the checksum byte order
	Version       uint32 // always Version (3007000)
	PageSize      uint32 // database page size in bytes, 512..65536, power of two
	CheckpointSeq uint32 // incremented by SQLite each time the WAL is reset
	Salt1         uint32 // incremented on each reset; every valid frame copies it
	Salt2         uint32 // random on each reset; every valid frame copies it
	Checksum1     uint32 // checksum of the first 24 header bytes, first word
	Checksum2     uint32 // checksum of the first 24 header bytes, second word
}

// NewHeader returns a valid header with the given fields and a computed
// checksum. SQLite never needs it; it exists so tests and tools can build
// WALs (for example with big-endian checksums, which x86 SQLite never writes).
func NewHeader(bigEndian bool, pageSize, checkpointSeq, salt1, salt2 uint32) Header {
	h := Header{
		Magic:         MagicLE,
		Version:       Version,
		PageSize:      pageSize,
		CheckpointSeq: checkpointSeq,
		Salt1:         salt1,
		Salt2:         salt2,
	}
	if bigEndian {
		h.Magic = MagicBE
	}
	b := h.Encode()
	h.Checksum1, h.Checksum2 = Checksum(bigEndian, 0, 0, b[:24])
	return h
}

// BigEndian reports whether the checksums of this WAL read data as big-endian
// words. It is the low bit of the magic number, exactly as SQLite tests it.
func (h Header) BigEndian() bool { return h.Magic&1 == 1 }

// FrameSize is the size of one frame (header plus page image) in this WAL.
// Frames are laid out back to back from HeaderSize, so frame i (0-based)
// starts at HeaderSize + i*FrameSize.
func (h Header) FrameSize() int64 { return FrameHeaderSize + int64(h.PageSize) }

// Encode returns the 32 on-disk bytes of h, writing the fields verbatim
// (including the checksum fields, so tests can also build corrupt headers).
func (h Header) Encode() []byte {
	b := make([]byte, HeaderSize)
	be := binary.BigEndian
	be.PutUint32(b[0:], h.Magic)
	be.PutUint32(b[4:], h.Version)
	be.PutUint32(b[8:], h.PageSize)
	be.PutUint32(b[12:], h.CheckpointSeq)
	be.PutUint32(b[16:], h.Salt1)
	be.PutUint32(b[20:], h.Salt2)
	be.PutUint32(b[24:], h.Checksum1)
	be.PutUint32(b[28:], h.Checksum2)
	return b
}

// ParseHeader decodes and validates a WAL header from the first HeaderSize
// bytes of b. It applies the same checks as SQLite's WAL recovery (magic,
// version, page size, header checksum), so a header it accepts is one SQLite
// would read frames after, and a header it rejects (error wrapping
// ErrBadHeader) means SQLite sees an empty log.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d", ErrBadHeader, len(b), HeaderSize)
	}
	be := binary.BigEndian
	h := Header{
		Magic:         be.Uint32(b[0:]),
		Version:       be.Uint32(b[4:]),
		PageSize:      be.Uint32(b[8:]),
		CheckpointSeq: be.Uint32(b[12:]),
		Salt1:         be.Uint32(b[16:]),
		Salt2:         be.Uint32(b[20:]),
		Checksum1:     be.Uint32(b[24:]),
		Checksum2:     be.Uint32(b[28:]),
	}
	if err := h.validate(); err != nil {
		return Header{}, err
	}
	c1, c2 := Checksum(h.BigEndian(), 0, 0, b[:24])
	if c1 != h.Checksum1 || c2 != h.Checksum2 {
		return Header{}, fmt.Errorf("%w: checksum %08x%08x, computed %08x%08x",
			ErrBadHeader, h.Checksum1, h.Checksum2, c1, c2)
	}
	return h, nil
}

// validate checks every field except the checksum. Scan also calls it so a
// hand-built Header can never make it divide by a bogus frame size or
// allocate a huge buffer.
func (h Header) validate() error {
	if h.Magic != MagicLE && h.Magic != MagicBE {
		return fmt.Errorf("%w: magic %08x", ErrBadHeader, h.Magic)
	}
	if h.Version != Version {
		return fmt.Errorf("%w: version %d, want %d", ErrBadHeader, h.Version, Version)
	}
	if !validPageSize(h.PageSize) {
		return fmt.Errorf("%w: page size %d", ErrBadHeader, h.PageSize)
	}
	return nil
}

// validPageSize reports whether n is a power of two in [MinPageSize, MaxPageSize].
func validPageSize(n uint32) bool {
	return n >= MinPageSize && n <= MaxPageSize && n&(n-1) == 0
}

// ReadHeader reads and validates the header at offset 0 of r. A file shorter
// than HeaderSize (for example one just truncated by a TRUNCATE checkpoint)
// yields an error wrapping ErrBadHeader, like any other invalid header; other
// read failures are returned wrapped as I/O errors.
func ReadHeader(r io.ReaderAt) (Header, error) {
	b := make([]byte, HeaderSize)
	n, err := r.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Header{}, fmt.Errorf("wal: reading header: %w", err)
	}
	return ParseHeader(b[:n])
}
