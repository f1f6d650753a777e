package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// randomTxn runs one transaction of random inserts, updates and deletes
// (blobs up to a few pages, so some transactions span many frames). It
// always inserts a row: a transaction that changes no page writes no frame,
// so SQLite would not log it at all.
func randomTxn(d *liveDB, rng *rand.Rand, pageSize int) {
	stmts := []string{fmt.Sprintf("INSERT INTO t(v) VALUES (randomblob(%d))", rng.IntN(pageSize))}
	for range rng.IntN(4) {
		switch rng.IntN(4) {
		case 0, 1:
			stmts = append(stmts, fmt.Sprintf("INSERT INTO t(v) VALUES (randomblob(%d))", rng.IntN(3*pageSize)))
		case 2:
			stmts = append(stmts, fmt.Sprintf("UPDATE t SET v = randomblob(%d) WHERE id %% 7 = %d", rng.IntN(pageSize), rng.IntN(7)))
		case 3:
			stmts = append(stmts, fmt.Sprintf("DELETE FROM t WHERE id %% 5 = %d", rng.IntN(5)))
		}
	}
	d.inTxn(stmts...)
}

// TestScanMatchesSQLite writes transactions with SQLite while scanning its
// live WAL incrementally, the way a capture loop polls it, and checks that
// every transaction is seen exactly once with the database size SQLite
// reports. It then applies the captured pages to the database file as it
// was before the log began and checks the result is byte for byte the file
// SQLite produces by checkpointing the same log.
func TestScanMatchesSQLite(t *testing.T) {
	tests := []struct {
		name     string
		pageSize int
		txns     int
		pragmas  []string
	}{
		{name: "page512", pageSize: 512, txns: 40},
		{name: "page4096", pageSize: 4096, txns: 30},
		{name: "page1024-autovacuum", pageSize: 1024, txns: 40, pragmas: []string{"PRAGMA auto_vacuum=FULL"}},
		{name: "page65536", pageSize: 65536, txns: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tt.pageSize), uint64(tt.txns)))
			d := openLiveDB(t, t.TempDir(), tt.pageSize, tt.pragmas...)
			base := d.dbFile()
			var (
				sizes []uint32 // PRAGMA page_count after each transaction
				got   []Txn
				pos   Position
				h     Header
			)
			poll := func() {
				f, err := os.Open(d.path + "-wal")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if h.PageSize == 0 {
					if h, err = ReadHeader(f); err != nil {
						t.Fatalf("reading live header: %v", err)
					}
					pos = HeaderPosition(h)
				}
				pos, err = Scan(f, h, pos, func(txn Txn) error {
					got = append(got, txn)
					return nil
				})
				if err != nil {
					t.Fatalf("scanning live WAL: %v", err)
				}
			}
			for i := range tt.txns {
				randomTxn(d, rng, tt.pageSize)
				sizes = append(sizes, d.pageCount())
				if i%3 == 0 {
					poll()
				}
			}
			poll()
			if len(got) != tt.txns {
				t.Fatalf("scanned %d txns, SQLite committed %d", len(got), tt.txns)
			}
			for i, txn := range got {
				if txn.DBSize != sizes[i] {
					t.Errorf("txn %d: DBSize %d, page_count %d", i, txn.DBSize, sizes[i])
				}
			}
			if last := got[len(got)-1].DBSize; last != d.pageCount() {
				t.Errorf("final DBSize %d, page_count %d", last, d.pageCount())
			}

			image := applyTxns(t, base, d.wal(), h, got)
			d.exec("PRAGMA wal_checkpoint(TRUNCATE)")
			if want := d.dbFile(); !bytes.Equal(image, want) {
				t.Fatalf("applied image (%d bytes) differs from SQLite's checkpoint (%d bytes)", len(image), len(want))
			}
		})
	}
}

// applyTxns replays txns onto a copy of a database file: the final image of
// each page (Txn.Pages), read and re-verified with ReadPage, then a
// truncation to the committed size.
func applyTxns(t testing.TB, base, wal []byte, h Header, txns []Txn) []byte {
	t.Helper()
	img := bytes.Clone(base)
	ps := int64(h.PageSize)
	r := bytes.NewReader(wal)
	for _, txn := range txns {
		for _, f := range txn.Pages() {
			page, err := ReadPage(r, h, f)
			if err != nil {
				t.Fatalf("reading page %d: %v", f.Pgno, err)
			}
			end := int64(f.Pgno) * ps
			if int64(len(img)) < end {
				img = append(img, make([]byte, end-int64(len(img)))...)
			}
			copy(img[end-ps:end], page)
		}
		if size := int64(txn.DBSize) * ps; int64(len(img)) > size {
			img = img[:size]
		} else if int64(len(img)) < size {
			t.Fatalf("txn leaves %d pages but only %d bytes were written", txn.DBSize, len(img))
		}
	}
	return img
}

// TestDamageAgreesWithSQLite damages a real WAL in many ways (truncation
// inside and between frames, flipped page bytes, wrong salts, zero page
// numbers, a bad header) and checks that SQLite's own crash recovery sees
// exactly the transactions Scan reports: each transaction inserts one row,
// so the row count SQLite sees is the number of transactions it recovered.
// The same damage is applied to a big-endian re-encoding, which also shows
// SQLite accepts the big-endian checksums our encoder writes.
func TestDamageAgreesWithSQLite(t *testing.T) {
	const txns = 12
	d := openLiveDB(t, t.TempDir(), 512)
	base := d.dbFile()
	rng := rand.New(rand.NewPCG(1, 2))
	for range txns {
		d.inTxn(fmt.Sprintf("INSERT INTO t(v) VALUES (randomblob(%d))", rng.IntN(1500)))
	}
	le := d.wal()
	h, all, _ := scanAll(t, le)
	if len(all) != txns {
		t.Fatalf("undamaged WAL has %d txns, want %d", len(all), txns)
	}
	fs := int(h.FrameSize())
	nframes := (len(le) - HeaderSize) / fs

	type variant struct {
		name   string
		damage func([]byte) []byte
	}
	variants := []variant{
		{"intact", func(b []byte) []byte { return b }},
		{"header-checksum", func(b []byte) []byte { b[31] ^= 1; return b }},
		{"header-only", func(b []byte) []byte { return b[:HeaderSize] }},
	}
	for k := 0; k < nframes; k += 3 {
		off := HeaderSize + k*fs
		variants = append(variants,
			variant{fmt.Sprintf("truncate-frame%d", k), func(b []byte) []byte { return b[:off] }},
			variant{fmt.Sprintf("truncate-frame%d-header", k), func(b []byte) []byte { return b[:off+FrameHeaderSize] }},
			variant{fmt.Sprintf("truncate-frame%d-page", k), func(b []byte) []byte { return b[:off+fs-1] }},
			variant{fmt.Sprintf("flip-page%d", k), func(b []byte) []byte { b[off+FrameHeaderSize+k] ^= 0x40; return b }},
			variant{fmt.Sprintf("salt2-frame%d", k), func(b []byte) []byte { b[off+15]++; return b }},
			variant{fmt.Sprintf("checksum-frame%d", k), func(b []byte) []byte { b[off+19]++; return b }},
			variant{fmt.Sprintf("pgno0-frame%d", k), func(b []byte) []byte {
				binary.BigEndian.PutUint32(b[off:], 0)
				return b
			}},
		)
	}
	for _, order := range []string{"le", "be"} {
		src := le
		if order == "be" {
			src = reencode(t, le, true)
		}
		for _, v := range variants {
			t.Run(order+"/"+v.name, func(t *testing.T) {
				wal := v.damage(bytes.Clone(src))
				scanned := 0
				if h, err := ParseHeader(wal); err == nil {
					_, txns, _ := scanAll(t, wal)
					scanned = len(txns)
					checkResume(t, wal, h, txns)
				} else if !errors.Is(err, ErrBadHeader) {
					t.Fatalf("parsing damaged header: %v", err)
				}
				if rows := countRows(t, base, wal); rows != scanned {
					t.Fatalf("SQLite recovers %d txns, Scan reports %d", rows, scanned)
				}
				if v.name == "intact" && scanned != txns {
					t.Fatalf("intact WAL: %d txns, want %d", scanned, txns)
				}
			})
		}
	}
}
