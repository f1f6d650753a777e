package wal

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update regenerates the golden WAL fixtures in testdata/ from real SQLite:
//
//	go test ./core/wal -run TestGenerateFixtures -update
//
// SQLite picks random salts, so regenerated files differ byte for byte, but
// their structure (the expectations in golden_test.go) must not change.
var update = flag.Bool("update", false, "regenerate testdata/*.wal from SQLite")

// blob returns n deterministic bytes as an SQL blob literal.
func blob(n int, seed byte) string {
	var sb strings.Builder
	sb.WriteString("x'")
	for i := range n {
		fmt.Fprintf(&sb, "%02x", byte(i)*7+seed)
	}
	sb.WriteString("'")
	return sb.String()
}

// validWorkload runs the transactions of the "valid" fixtures: small and
// multi-page (overflow pages, index creation, leaf splits) transactions.
func validWorkload(d *liveDB, pageSize int) {
	d.inTxn("INSERT INTO t(v) VALUES (x'01')")
	d.inTxn("INSERT INTO t(v) VALUES (" + blob(3*pageSize, 1) + ")")
	d.inTxn("UPDATE t SET v = x'02' WHERE id = 1")
	d.inTxn("CREATE INDEX t_v ON t(v)")
	var stmts []string
	for i := range 12 {
		stmts = append(stmts, "INSERT INTO t(v) VALUES ("+blob(pageSize/8, byte(i))+")")
	}
	d.inTxn(stmts...)
}

// generateFixtures builds every fixture and returns them by file name.
func generateFixtures(t *testing.T) map[string][]byte {
	out := map[string][]byte{}

	// Valid logs of several transactions at the smallest and a small page size.
	for _, ps := range []int{512, 1024} {
		d := openLiveDB(t, t.TempDir(), ps)
		validWorkload(d, ps)
		out[fmt.Sprintf("valid-%d.wal", ps)] = d.wal()
	}

	// The largest page size: one single-frame transaction keeps it small.
	{
		d := openLiveDB(t, t.TempDir(), 65536)
		d.inTxn("INSERT INTO t(v) VALUES (x'01')")
		out["valid-65536.wal"] = d.wal()
	}

	// The damaged variants derive from the smallest valid log.
	valid := out["valid-512.wal"]
	h, txns, _ := scanAll(t, valid)
	if len(txns) != 5 || len(txns[1].Frames) < 2 || len(txns[4].Frames) < 2 {
		t.Fatalf("unexpected valid-512 structure: %d txns", len(txns))
	}

	// A frame in the middle of the last transaction carries a wrong salt-1.
	// Salts are not covered by the checksum, so only the salt check stops it.
	{
		b := bytes.Clone(valid)
		off := txns[4].Frames[1].Offset
		binary.BigEndian.PutUint32(b[off+8:], h.Salt1^1)
		out["salt-mismatch.wal"] = b
	}

	// One byte of a page in the middle of the second transaction is flipped:
	// the chain breaks there although every later frame is intact.
	{
		b := bytes.Clone(valid)
		off := txns[1].Frames[1].Offset + FrameHeaderSize + 100
		b[off] ^= 0xff
		out["checksum-break.wal"] = b
	}

	// The file ends in the middle of the last commit frame.
	out["torn.wal"] = bytes.Clone(valid[:len(valid)-100])

	// The same log with big-endian checksums, as a big-endian host writes.
	out["bigendian.wal"] = reencode(t, valid, true)

	// A real reset: a checkpoint backfills everything, so SQLite's next write
	// restarts the log at offset 32 with salt-1 incremented, leaving the
	// older, longer generation's frames behind as a stale tail.
	{
		d := openLiveDB(t, t.TempDir(), 512)
		validWorkload(d, 512)
		before, err := ParseHeader(d.wal())
		if err != nil {
			t.Fatal(err)
		}
		d.exec("PRAGMA wal_checkpoint(PASSIVE)")
		d.inTxn("INSERT INTO t(v) VALUES (x'03')")
		d.inTxn("UPDATE t SET v = x'04' WHERE id = 1")
		b := d.wal()
		after, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if after.Salt1 != before.Salt1+1 || after.CheckpointSeq != before.CheckpointSeq+1 {
			t.Fatalf("no reset: header before %+v after %+v", before, after)
		}
		out["reset.wal"] = b
	}

	// A real open transaction: a tiny page cache makes SQLite spill dirty
	// pages into the log before the commit; the copy is taken mid-transaction.
	{
		d := openLiveDB(t, t.TempDir(), 512)
		d.exec("PRAGMA cache_size=10")
		d.inTxn("INSERT INTO t(v) VALUES (x'01')")
		tx, err := d.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 30 {
			if _, err := tx.Exec("INSERT INTO t(v) VALUES (" + blob(400, byte(i)) + ")"); err != nil {
				t.Fatal(err)
			}
		}
		out["open-txn.wal"] = d.wal()
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestGenerateFixtures rewrites testdata/*.wal when run with -update.
func TestGenerateFixtures(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate testdata/*.wal")
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	total := 0
	for name, b := range generateFixtures(t) {
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		total += len(b)
		// Log the structure, to compare with (or write) the expectations.
		h, txns, pos := scanAll(t, b)
		t.Logf("wrote testdata/%s: %d bytes, page size %d, big-endian %v, checkpoint seq %d, log ends at %d",
			name, len(b), h.PageSize, h.BigEndian(), h.CheckpointSeq, pos.Offset)
		for _, txn := range txns {
			t.Logf("  {pgnos: %v, dbSize: %d, end: %d},", pgnos(txn.Frames), txn.DBSize, txn.End)
		}
	}
	t.Logf("%d bytes of fixtures", total)
}
