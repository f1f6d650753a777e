package segment

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestPageHash(t *testing.T) {
	data := fillPage(512, 1, 1)
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 7)
	b = append(b, data...)
	if PageHash(7, data) != xxhash.Sum64(b) {
		t.Fatal("PageHash is not xxhash64(be32(pgno) || page)")
	}
	if PageHash(7, data) == PageHash(8, data) {
		t.Fatal("PageHash ignores the page number")
	}
	if n := testing.AllocsPerRun(100, func() { PageHash(7, data) }); n != 0 {
		t.Errorf("PageHash allocates %v times", n)
	}
}

// fullChecksum recomputes a database checksum from scratch.
func fullChecksum(db [][]byte) Checksum {
	var c Checksum
	for i, p := range db {
		c = c.AddPage(uint32(i+1), p)
	}
	return c
}

// TestChecksumIncremental drives a model database through writes, growth
// and truncation, and checks after every step that the incrementally
// maintained checksum equals a full recomputation.
func TestChecksumIncremental(t *testing.T) {
	const ps = 512
	rng := rand.New(rand.NewPCG(1, 2))
	newPage := func() []byte {
		b := make([]byte, ps)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var db [][]byte
	var c Checksum
	for step := 0; step < 2000; step++ {
		switch op := rng.IntN(10); {
		case op < 6 && len(db) > 0: // overwrite
			p := rng.IntN(len(db))
			nw := newPage()
			c = c.ReplacePage(uint32(p+1), db[p], nw)
			db[p] = nw
		case op < 8: // grow: SQLite writes every new page
			for n := rng.IntN(5) + 1; n > 0; n-- {
				db = append(db, newPage())
				c = c.AddPage(uint32(len(db)), db[len(db)-1])
			}
		default: // truncate: cut pages are XORed out
			keep := rng.IntN(len(db) + 1)
			for p := len(db); p > keep; p-- {
				c = c.RemovePage(uint32(p), db[p-1])
			}
			db = db[:keep]
		}
		if want := fullChecksum(db); c != want {
			t.Fatalf("step %d: incremental %v, full %v", step, c, want)
		}
	}
	if len(db) == 0 || c == 0 {
		t.Fatal("model ended empty; the test proves little")
	}
}

// TestChecksumDetects shows the failures a linear (CRC) page hash would
// miss: swapped page contents and the same damage in two pages.
func TestChecksumDetects(t *testing.T) {
	a, b := fillPage(512, 1, 1), fillPage(512, 2, 1)
	sum := Checksum(0).AddPage(1, a).AddPage(2, b)
	if swapped := Checksum(0).AddPage(1, b).AddPage(2, a); swapped == sum {
		t.Error("swapping two pages left the checksum unchanged")
	}
	a2, b2 := bytes.Clone(a), bytes.Clone(b)
	a2[100] ^= 0x40
	b2[100] ^= 0x40
	if Checksum(0).AddPage(1, a2).AddPage(2, b2) == sum {
		t.Error("the same bit flip in two pages left the checksum unchanged")
	}
}

func TestChecksumLockPage(t *testing.T) {
	lock := LockPage(4096)
	p := make([]byte, 4096)
	if got := Checksum(5).AddPage(lock, p); got != 5 {
		t.Errorf("lock page changed the checksum to %v", got)
	}
	if got := Checksum(5).AddPage(lock+1, p); got == 5 {
		t.Error("the page after the lock page did not count")
	}
	// A 100-byte "page" has no lock page; nothing is skipped.
	if Checksum(0).AddPage(LockPage(4096), make([]byte, 100)) == 0 {
		t.Error("a page of invalid size was skipped")
	}
	if s := Checksum(0xab).String(); s != "00000000000000ab" {
		t.Errorf("String() = %q", s)
	}
}
