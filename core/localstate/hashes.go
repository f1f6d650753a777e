package localstate

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/sqlitereplicator/replicator/core/segment"
)

// Hashes are the per-page hashes (core/segment.PageHash) of a database at
// a txid: what a catch-up compares the database with to find the pages
// that changed while continuity could not be followed.
//
// File format (big-endian): magic "RPLHASH1", page size u32, db size u32,
// txid u64, generation length u8 + bytes, then one u64 per page (index 0 is
// page 1; the lock-byte page's slot is 0), then the xxhash64 of everything
// before it.
type Hashes struct {
	Generation string
	TxID       uint64
	PageSize   uint32
	Pages      []uint64 // Pages[i] is the hash of page i+1
}

const hashesFile = "pagehash"

var hashesMagic = [8]byte{'R', 'P', 'L', 'H', 'A', 'S', 'H', '1'}

// SaveHashes replaces the hash file durably.
func (d *Dir) SaveHashes(h *Hashes) error {
	return writeAtomic(filepath.Join(d.path, hashesFile), func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		x := xxhash.New()
		mw := io.MultiWriter(bw, x)
		var hdr []byte
		hdr = append(hdr, hashesMagic[:]...)
		hdr = binary.BigEndian.AppendUint32(hdr, h.PageSize)
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(h.Pages)))
		hdr = binary.BigEndian.AppendUint64(hdr, h.TxID)
		hdr = append(hdr, byte(len(h.Generation)))
		hdr = append(hdr, h.Generation...)
		if _, err := mw.Write(hdr); err != nil {
			return err
		}
		var b [8]byte
		for _, v := range h.Pages {
			binary.BigEndian.PutUint64(b[:], v)
			if _, err := mw.Write(b[:]); err != nil {
				return err
			}
		}
		binary.BigEndian.PutUint64(b[:], x.Sum64())
		if _, err := bw.Write(b[:]); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// LoadHashes reads the hash file; ok=false when there is none.
func (d *Dir) LoadHashes() (h *Hashes, ok bool, err error) {
	path := filepath.Join(d.path, hashesFile)
	b, err := os.ReadFile(path)
	if isNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	h, err = decodeHashes(b)
	if err != nil {
		return nil, false, fmt.Errorf("page hash file %s is damaged (%w); the daemon will start a new generation", path, err)
	}
	return h, true, nil
}

func decodeHashes(b []byte) (*Hashes, error) {
	const fixed = 8 + 4 + 4 + 8 + 1
	if len(b) < fixed+8 || [8]byte(b[:8]) != hashesMagic {
		return nil, errors.New("bad magic or size")
	}
	if xxhash.Sum64(b[:len(b)-8]) != binary.BigEndian.Uint64(b[len(b)-8:]) {
		return nil, errors.New("checksum mismatch")
	}
	h := &Hashes{PageSize: binary.BigEndian.Uint32(b[8:]), TxID: binary.BigEndian.Uint64(b[16:])}
	n := int(binary.BigEndian.Uint32(b[12:]))
	gl := int(b[24])
	body := b[fixed : len(b)-8]
	if len(body) != gl+8*n {
		return nil, errors.New("size does not match page count")
	}
	h.Generation = string(body[:gl])
	body = body[gl:]
	h.Pages = make([]uint64, n)
	for i := range h.Pages {
		h.Pages[i] = binary.BigEndian.Uint64(body[8*i:])
	}
	return h, nil
}

// Checksum returns the database checksum the hashes describe: the XOR of
// every page's hash.
func (h *Hashes) Checksum() uint64 {
	var c uint64
	for _, v := range h.Pages {
		c ^= v
	}
	return c
}

// Clone returns a deep copy.
func (h *Hashes) Clone() *Hashes {
	c := *h
	c.Pages = append([]uint64(nil), h.Pages...)
	return &c
}

// Set records the hash of page pgno's new content, growing the table if
// needed. The lock-byte page is never hashed.
func (h *Hashes) Set(pgno uint32, page []byte) {
	if int(pgno) > len(h.Pages) {
		h.Resize(pgno)
	}
	if pgno == segment.LockPage(h.PageSize) {
		return
	}
	h.Pages[pgno-1] = segment.PageHash(pgno, page)
}

// Resize sets the database size to n pages: pages past n are dropped, and
// pages a growth adds without writing them read as zeros, so they get the
// hash of a zero page.
func (h *Hashes) Resize(n uint32) {
	old := uint32(len(h.Pages))
	if n <= old {
		h.Pages = h.Pages[:n]
		return
	}
	zero := make([]byte, h.PageSize)
	lock := segment.LockPage(h.PageSize)
	for p := old + 1; p <= n; p++ {
		var v uint64
		if p != lock {
			v = segment.PageHash(p, zero)
		}
		h.Pages = append(h.Pages, v)
	}
}
