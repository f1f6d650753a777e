package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/core/segment"
)

// TestPageWriterAndChecksum writes runs of pages through the coalescing
// writer (runs longer than one write, gaps, a page written twice, a run
// restarted as a retried object would) and checks the file byte for byte
// and its read-back checksum against the pages' own.
func TestPageWriterAndChecksum(t *testing.T) {
	const ps = 512
	page := func(pgno uint32, gen byte) []byte {
		b := bytes.Repeat([]byte{gen}, ps)
		b[0], b[1], b[2], b[3] = byte(pgno>>24), byte(pgno>>16), byte(pgno>>8), byte(pgno)
		return b
	}
	type write struct {
		first, last uint32
		gen         byte
	}
	cases := []struct {
		name   string
		writes [][]write // one slice per object, each a sorted run list
		pages  uint32
	}{
		{name: "one page", writes: [][]write{{{1, 1, 1}}}, pages: 1},
		{name: "a run longer than one write", writes: [][]write{{{1, 5000, 1}}}, pages: 5000},
		{name: "gaps", writes: [][]write{{{1, 10, 1}, {12, 20, 1}, {2100, 2200, 1}}}, pages: 2200},
		{name: "a later object overwrites", writes: [][]write{{{1, 3000, 1}}, {{5, 6, 2}, {2047, 2050, 2}}}, pages: 3000},
		{name: "an object written again from the start", writes: [][]write{{{1, 100, 1}}, {{1, 50, 3}}, {{1, 100, 4}}}, pages: 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := make([]byte, int(c.pages)*ps)
			w := newPageWriter(f)
			w.pageSize = ps
			for _, obj := range c.writes {
				w.buf, w.n = w.buf[:0], 0
				for _, run := range obj {
					for p := run.first; p <= run.last; p++ {
						pg := page(p, run.gen)
						copy(want[int(p-1)*ps:], pg)
						if err := w.add(p, pg); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := w.flush(); err != nil {
					t.Fatal(err)
				}
				if err := w.wait(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("file differs from the pages written (%d bytes, want %d)", len(got), len(want))
			}
			var sum segment.Checksum
			for p := uint32(1); p <= c.pages; p++ {
				sum = sum.AddPage(p, want[int(p-1)*ps:int(p)*ps])
			}
			if got, err := fileChecksum(f, ps, c.pages); err != nil || got != sum {
				t.Errorf("fileChecksum = %s, %v; want %s", got, err, sum)
			}
		})
	}
}

// TestPageWriterError: a write that fails while the next run is being
// gathered is reported, by the next flush or by the wait at the end of the
// object, and never lost.
func TestPageWriterError(t *testing.T) {
	const ps = 512
	path := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, pages := range []uint32{1, 3 * runBytes / ps} {
		w := newPageWriter(f)
		w.pageSize = ps
		var err error
		for p := uint32(1); p <= pages && err == nil; p++ {
			err = w.add(p, make([]byte, ps))
		}
		if err == nil {
			err = w.flush()
		}
		if werr := w.wait(); err == nil {
			err = werr
		}
		if err == nil || !strings.Contains(err.Error(), "write pages 1-") {
			t.Errorf("%d pages into a read-only file: error %v, want the failed write of pages 1-...", pages, err)
		}
		if w.pending != nil {
			t.Errorf("%d pages: a write is still in flight", pages)
		}
	}
}
