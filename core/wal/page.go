package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ReadPage reads the page image of frame f, found by a Scan of the WAL r
// whose header is h, and returns it (h.PageSize bytes).
//
// A page is usually read some time after the scan that found its frame, and
// by then the WAL may have been reset and the frame overwritten by a new
// generation. So ReadPage reads the frame header and page in one request and
// re-verifies them — page number, commit field, salts and the frame's own
// checksum from f's seed — and returns an error wrapping ErrReset if the
// frame is no longer the one scanned. A page it returns is therefore exactly
// the one the scan validated.
func ReadPage(r io.ReaderAt, h Header, f Frame) ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("wal: reading page: %w", err)
	}
	if f.Offset < HeaderSize || f.Offset > maxOffset {
		return nil, fmt.Errorf("wal: reading page %d: frame offset %d out of range", f.Pgno, f.Offset)
	}
	buf := make([]byte, h.FrameSize())
	n, err := r.ReadAt(buf, f.Offset)
	if n < len(buf) {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("wal: reading page %d from frame at offset %d: %w", f.Pgno, f.Offset, err)
		}
		return nil, fmt.Errorf("%w: frame at offset %d (page %d) is gone", ErrReset, f.Offset, f.Pgno)
	}
	be := binary.BigEndian
	c1, c2 := Checksum(h.BigEndian(), f.Seed1, f.Seed2, buf[:8])
	c1, c2 = Checksum(h.BigEndian(), c1, c2, buf[FrameHeaderSize:])
	if be.Uint32(buf[0:]) != f.Pgno || be.Uint32(buf[4:]) != f.Commit ||
		be.Uint32(buf[8:]) != h.Salt1 || be.Uint32(buf[12:]) != h.Salt2 ||
		be.Uint32(buf[16:]) != c1 || be.Uint32(buf[20:]) != c2 {
		return nil, fmt.Errorf("%w: frame at offset %d (page %d) changed since it was scanned", ErrReset, f.Offset, f.Pgno)
	}
	return buf[FrameHeaderSize:], nil
}
