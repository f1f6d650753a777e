//go:build linux

package capture

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"testing"

	"unsafe"

	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite"
)

// TestIndexPagesChecksRanges checks that a remembered range that is no
// longer a mapping of the WAL index is never given back: here it is the
// process's own private memory, which MADV_DONTNEED would zero.
func TestIndexPagesChecksRanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t (v); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	p := newIndexPages(path + "-shm")
	if err := p.drop(); err != nil {
		t.Fatal(err)
	}
	if len(p.ranges) == 0 {
		t.Fatal("no mapping of the WAL index found")
	}

	mem, err := unix.Mmap(-1, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	for i := range mem {
		mem[i] = 0xA5
	}
	real := p.ranges
	// The same addresses as before would be taken for the WAL index's; a
	// range elsewhere, for one that was unmapped and reused.
	p.ranges = []mappedRange{{lo: addr(mem), hi: addr(mem) + 8192, file: real[0].file}}
	if err := p.drop(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mem, bytes.Repeat([]byte{0xA5}, 8192)) {
		t.Fatal("private memory was given back as if it were the WAL index")
	}
	if len(p.ranges) != len(real) || p.ranges[0] != real[0] {
		t.Fatalf("ranges after the check %v, want those of the index %v", p.ranges, real)
	}
}

func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
