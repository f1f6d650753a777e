package wal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Read sizes for Scan. A scan starts with reads of about initialChunk bytes
// (so polling a mostly idle WAL stays cheap) and doubles them while the file
// keeps delivering full reads, up to maxChunk, which bounds the memory a scan
// holds whatever the size of the log. Reads always cover whole frames, so a
// frame never straddles two reads.
const (
	initialChunk = 4 << 10
	maxChunk     = 1 << 20
)

// maxOffset bounds Position.Offset so offset arithmetic can never overflow.
const maxOffset = 1 << 62

// ErrReset is wrapped by errors reporting that the log no longer continues
// from a position obtained earlier: the WAL was reset (new salts), or the
// frames before or at the position were overwritten or removed. The caller
// has lost continuity and must resynchronise (for example by taking a new
// snapshot) instead of resuming; retrying with the same position can't help.
var ErrReset = errors.New("wal: log does not continue from position")

// Position is where a scan resumes: the file offset of the next frame and the
// state needed to verify it — the salts of the WAL generation and the running
// checksum after the previous frame. Positions returned by this package are
// always at a transaction boundary (just past a commit frame, or right after
// the header), so resuming from one never splits a transaction.
type Position struct {
	Offset    int64  // offset of the next frame; HeaderSize + k*FrameSize
	Salt1     uint32 // salts of the WAL generation the position belongs to
	Salt2     uint32
	Checksum1 uint32 // running checksum after the previous frame, or the
	Checksum2 uint32 // header checksum when Offset == HeaderSize
}

// HeaderPosition is the position of the first frame of the WAL whose header
// is h: where to start scanning a WAL from scratch.
func HeaderPosition(h Header) Position {
	return Position{
		Offset:    HeaderSize,
		Salt1:     h.Salt1,
		Salt2:     h.Salt2,
		Checksum1: h.Checksum1,
		Checksum2: h.Checksum2,
	}
}

// Frame locates one valid frame. It carries no page data, so a scan of any
// size holds only a few words per frame; read the page with ReadPage.
type Frame struct {
	Pgno   uint32 // database page number (1-based) of the page image
	Commit uint32 // database size in pages if this is a commit frame, else 0
	Offset int64  // offset of the frame header; the page is at Offset+FrameHeaderSize
	// Seed1 and Seed2 are the running checksum before this frame. With them
	// ReadPage re-verifies the frame on its own, so a page read after the
	// scan can't silently come from a frame that was overwritten meanwhile.
	Seed1, Seed2 uint32
}

// Txn is one committed transaction: the frames from just after the previous
// commit frame (or the header) up to and including its commit frame.
type Txn struct {
	Frames []Frame  // in log order; the last one is the commit frame
	DBSize uint32   // database size in pages after the commit
	End    int64    // offset just past the commit frame
	Next   Position // where to resume after this transaction; Next.Offset == End
}

// Pages returns the frame holding the final image of every page this
// transaction leaves in the database, ordered by page number: what a
// capture engine has to ship. When the transaction wrote a page more than
// once only the last frame counts; pages beyond DBSize are left out, since
// the commit truncated them away (SQLite's checkpoint skips them too).
func (t Txn) Pages() []Frame {
	idx := make(map[uint32]int, len(t.Frames))
	out := make([]Frame, 0, len(t.Frames))
	for _, f := range t.Frames {
		if f.Pgno > t.DBSize {
			continue
		}
		if i, ok := idx[f.Pgno]; ok {
			out[i] = f
			continue
		}
		idx[f.Pgno] = len(out)
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Frame) int { return cmp.Compare(a.Pgno, b.Pgno) })
	return out
}

// Scan reads the frames of the WAL r (whose header is h) from position from,
// verifying each frame's salts and the cumulative checksum chain, and calls
// fn, in log order, for every complete committed transaction.
//
// The valid log ends at the first frame that is missing or short (torn), has
// a page number of 0, carries salts other than h's, or breaks the checksum
// chain; reaching it is the normal end of a scan, not an error. Valid frames
// after the last commit frame belong to a transaction still being written
// and are not delivered. The returned Position is just past the last
// transaction delivered (from itself if none): resuming there later picks up
// exactly the transactions committed since, each exactly once.
//
// Before reading anything Scan checks that the log still continues from
// from: its salts must be h's, and the frame before it must still be the
// commit frame whose checksum from records (or, at the first frame, the
// header checksum must match). Otherwise the WAL was reset or rewritten and
// Scan returns an error wrapping ErrReset. A position that is not on a frame
// boundary, or not after a commit frame, is rejected as a caller bug.
//
// If fn returns an error, Scan stops and returns it unchanged, with the
// position after the last transaction for which fn succeeded. I/O errors are
// returned wrapped, with the position reached so far. fn may retain the Txn
// and its Frames; a nil fn just finds the end of the committed log.
//
// Scan reads in chunks of whole frames (growing up to about 1 MiB), runs in
// time linear in the bytes scanned and holds at most one chunk plus the
// Frame records of one transaction, whatever the size of the WAL. It does
// not lock anything: if SQLite writes concurrently, the scan sees a prefix of
// the log, and torn or in-progress frames simply end it.
func Scan(r io.ReaderAt, h Header, from Position, fn func(Txn) error) (Position, error) {
	var s Scanner
	return s.Scan(r, h, from, fn)
}

// A Scanner is Scan with a read buffer kept from one scan to the next. A
// daemon capturing a busy database scans every few milliseconds, and a
// buffer grown anew for each scan (up to 1 MiB) is most of its garbage.
// The zero value is ready to use; a Scanner is not safe for concurrent
// use.
type Scanner struct {
	buf []byte
}

// Buffered is the size of the buffer s keeps, in bytes.
func (s *Scanner) Buffered() int { return cap(s.buf) }

// Scan is the package-level Scan, reusing s's buffer.
func (s *Scanner) Scan(r io.ReaderAt, h Header, from Position, fn func(Txn) error) (Position, error) {
	if err := h.validate(); err != nil {
		return from, fmt.Errorf("wal: scanning: %w", err)
	}
	if err := checkPosition(r, h, from); err != nil {
		return from, err
	}
	fs := h.FrameSize()
	frames := max(1, initialChunk/fs)
	maxFrames := max(1, maxChunk/fs)
	bigEndian := h.BigEndian()
	var (
		buf      = s.buf
		pending  []Frame
		pos      = from
		s1, s2   = from.Checksum1, from.Checksum2
		readOff  = from.Offset
		frameOff = from.Offset
	)
	for {
		buf = growBuffer(buf, int(frames*fs))
		s.buf = buf
		n, err := r.ReadAt(buf, readOff)
		if err != nil && !errors.Is(err, io.EOF) {
			return pos, fmt.Errorf("wal: reading frames at offset %d: %w", readOff, err)
		}
		if n < 0 || n > len(buf) {
			return pos, fmt.Errorf("wal: reading frames at offset %d: reader returned %d bytes for a %d-byte read", readOff, n, len(buf))
		}
		for b := buf[:n]; int64(len(b)) >= fs; b = b[fs:] {
			fr := b[:fs]
			pgno := binary.BigEndian.Uint32(fr[0:])
			commit := binary.BigEndian.Uint32(fr[4:])
			if pgno == 0 ||
				binary.BigEndian.Uint32(fr[8:]) != h.Salt1 ||
				binary.BigEndian.Uint32(fr[12:]) != h.Salt2 {
				return pos, nil
			}
			c1, c2 := Checksum(bigEndian, s1, s2, fr[:8])
			c1, c2 = Checksum(bigEndian, c1, c2, fr[FrameHeaderSize:])
			if c1 != binary.BigEndian.Uint32(fr[16:]) || c2 != binary.BigEndian.Uint32(fr[20:]) {
				return pos, nil
			}
			pending = append(pending, Frame{Pgno: pgno, Commit: commit, Offset: frameOff, Seed1: s1, Seed2: s2})
			s1, s2 = c1, c2
			frameOff += fs
			if commit == 0 {
				continue
			}
			txn := Txn{
				Frames: pending,
				DBSize: commit,
				End:    frameOff,
				Next:   Position{Offset: frameOff, Salt1: h.Salt1, Salt2: h.Salt2, Checksum1: c1, Checksum2: c2},
			}
			// fn may keep txn.Frames, so start a new slice, sized like this
			// transaction since consecutive ones tend to be alike.
			pending = make([]Frame, 0, len(txn.Frames))
			if fn != nil {
				if err := fn(txn); err != nil {
					return pos, err
				}
			}
			pos = txn.Next
		}
		if n < len(buf) {
			// End of file; any partial frame left is torn.
			return pos, nil
		}
		readOff += int64(n)
		frames = min(2*frames, maxFrames)
	}
}

// growBuffer returns buf resized to n bytes, reusing its storage if it can.
func growBuffer(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}

// checkPosition verifies that the log in r, whose header is h, still
// continues from p (see Scan). It reads at most the frame before p.
func checkPosition(r io.ReaderAt, h Header, p Position) error {
	fs := h.FrameSize()
	if p.Offset < HeaderSize || p.Offset > maxOffset || (p.Offset-HeaderSize)%fs != 0 {
		return fmt.Errorf("wal: position offset %d is not a frame boundary for page size %d", p.Offset, h.PageSize)
	}
	if p.Salt1 != h.Salt1 || p.Salt2 != h.Salt2 {
		return fmt.Errorf("%w: position salts %08x %08x, header salts %08x %08x",
			ErrReset, p.Salt1, p.Salt2, h.Salt1, h.Salt2)
	}
	if p.Offset == HeaderSize {
		if p.Checksum1 != h.Checksum1 || p.Checksum2 != h.Checksum2 {
			return fmt.Errorf("%w: position checksum %08x%08x, header checksum %08x%08x",
				ErrReset, p.Checksum1, p.Checksum2, h.Checksum1, h.Checksum2)
		}
		return nil
	}
	// Read the whole previous frame, not just its header: a file cut short
	// inside that frame no longer reaches p either.
	prev := p.Offset - fs
	b := make([]byte, fs)
	n, err := r.ReadAt(b, prev)
	if n < len(b) {
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("wal: reading the frame before position %d: %w", p.Offset, err)
		}
		return fmt.Errorf("%w: frame before position (offset %d) is gone", ErrReset, prev)
	}
	be := binary.BigEndian
	if be.Uint32(b[0:]) == 0 || be.Uint32(b[8:]) != p.Salt1 || be.Uint32(b[12:]) != p.Salt2 ||
		be.Uint32(b[16:]) != p.Checksum1 || be.Uint32(b[20:]) != p.Checksum2 {
		return fmt.Errorf("%w: frame before position (offset %d) was overwritten", ErrReset, prev)
	}
	if be.Uint32(b[4:]) == 0 {
		return fmt.Errorf("wal: position offset %d does not follow a commit frame", p.Offset)
	}
	return nil
}
