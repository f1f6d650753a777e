package segment

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// PageHash returns xxHash64(pgno as 4 big-endian bytes || page), the term a
// page contributes to the database checksum. The page number is hashed so
// that moving content from one page to another changes the checksum.
func PageHash(pgno uint32, page []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], pgno)
	d.Write(p[:])
	d.Write(page)
	return d.Sum64()
}

// Checksum is a database checksum: the XOR of PageHash over every page of a
// database except the lock-byte page (see doc.go). The zero value is the
// checksum of an empty database. Methods return the updated value.
//
// Because the lock-byte page is never part of a checksum, AddPage and
// RemovePage ignore pgno == LockPage(len(page)); callers that recompute a
// checksum from a database file can feed it every page.
type Checksum uint64

// AddPage returns c with a page that was not in the database XORed in, as
// when the database grows.
func (c Checksum) AddPage(pgno uint32, page []byte) Checksum {
	if pgno == LockPage(uint32(len(page))) {
		return c
	}
	return c ^ Checksum(PageHash(pgno, page))
}

// RemovePage returns c with a page XORed out, as when truncation cuts it
// off. XOR is its own inverse, so this is the same operation as AddPage;
// the second name says what the caller means.
func (c Checksum) RemovePage(pgno uint32, page []byte) Checksum {
	return c.AddPage(pgno, page)
}

// ReplacePage returns c updated for page pgno changing from old to new.
func (c Checksum) ReplacePage(pgno uint32, old, new []byte) Checksum {
	return c.RemovePage(pgno, old).AddPage(pgno, new)
}

// String formats c as 16 lowercase hex digits, as logs and tools show it.
func (c Checksum) String() string { return fmt.Sprintf("%016x", uint64(c)) }
