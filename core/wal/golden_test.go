package wal

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// goldenTxn is the expected shape of one committed transaction.
type goldenTxn struct {
	pgnos  []uint32
	dbSize uint32
	end    int64
}

// validTxns512 and validTxns1024 are the transactions of validWorkload: one
// small insert, an insert with overflow pages, an update, an index creation
// and a multi-row insert that splits the table's root leaf.
var (
	validTxns512 = []goldenTxn{
		{pgnos: []uint32{2}, dbSize: 2, end: 568},
		{pgnos: []uint32{1, 2, 3, 4, 5}, dbSize: 5, end: 3248},
		{pgnos: []uint32{2}, dbSize: 5, end: 3784},
		{pgnos: []uint32{1, 6, 7, 8, 9}, dbSize: 9, end: 6464},
		{pgnos: []uint32{1, 2, 6, 10, 11, 12, 13}, dbSize: 13, end: 10216},
	}
	validTxns1024 = []goldenTxn{
		{pgnos: []uint32{2}, dbSize: 2, end: 1080},
		{pgnos: []uint32{1, 2, 3, 4, 5}, dbSize: 5, end: 6320},
		{pgnos: []uint32{2}, dbSize: 5, end: 7368},
		{pgnos: []uint32{1, 6, 7, 8, 9}, dbSize: 9, end: 12608},
		{pgnos: []uint32{1, 2, 6, 10, 11, 12, 13}, dbSize: 13, end: 19944},
	}
)

// golden is the expected scan of one fixture.
type golden struct {
	file          string
	pageSize      uint32
	bigEndian     bool
	checkpointSeq uint32
	txns          []goldenTxn
	// uncommitted is how many chain-valid frames follow the last commit;
	// stale says the slot after the valid log holds a frame of the previous
	// WAL generation (salt-1 one less).
	uncommitted int
	stale       bool
}

// goldens are the expected scans of testdata/*.wal (see generateFixtures).
var goldens = []golden{
	{file: "valid-512.wal", pageSize: 512, checkpointSeq: 1, txns: validTxns512},
	{file: "valid-1024.wal", pageSize: 1024, checkpointSeq: 1, txns: validTxns1024},
	{file: "valid-65536.wal", pageSize: 65536, checkpointSeq: 1,
		txns: []goldenTxn{{pgnos: []uint32{2}, dbSize: 2, end: 65592}}},
	{file: "bigendian.wal", pageSize: 512, bigEndian: true, checkpointSeq: 1, txns: validTxns512},
	// Frame 1 of the last transaction has a wrong salt-1: its frame 0 is
	// valid but uncommitted, and the transaction is lost.
	{file: "salt-mismatch.wal", pageSize: 512, checkpointSeq: 1, txns: validTxns512[:4], uncommitted: 1},
	// A page byte of frame 1 of the second transaction is flipped: the chain
	// stops there although all later frames are intact.
	{file: "checksum-break.wal", pageSize: 512, checkpointSeq: 1, txns: validTxns512[:1], uncommitted: 1},
	// The last commit frame is cut short: its 6 predecessors stay uncommitted.
	{file: "torn.wal", pageSize: 512, checkpointSeq: 1, txns: validTxns512[:4], uncommitted: 6},
	// After a reset, two short transactions overwrite the start of the log;
	// the rest of the previous generation must be ignored.
	{file: "reset.wal", pageSize: 512, checkpointSeq: 2, stale: true, txns: []goldenTxn{
		{pgnos: []uint32{10, 13}, dbSize: 13, end: 1104},
		{pgnos: []uint32{10, 12}, dbSize: 13, end: 2176},
	}},
	// Copied in the middle of a transaction whose dirty pages spilled.
	{file: "open-txn.wal", pageSize: 512, checkpointSeq: 1, uncommitted: 23,
		txns: []goldenTxn{{pgnos: []uint32{2}, dbSize: 2, end: 568}}},
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", g.file))
			if err != nil {
				t.Fatal(err)
			}
			h, txns, pos := scanAll(t, b)
			if h.PageSize != g.pageSize || h.BigEndian() != g.bigEndian || h.CheckpointSeq != g.checkpointSeq {
				t.Fatalf("header = %+v, want page size %d, big-endian %v, checkpoint seq %d",
					h, g.pageSize, g.bigEndian, g.checkpointSeq)
			}
			if len(txns) != len(g.txns) {
				t.Fatalf("got %d txns, want %d", len(txns), len(g.txns))
			}
			want := HeaderPosition(h)
			for i, txn := range txns {
				checkTxn(t, h, want.Offset, txn)
				if !slices.Equal(pgnos(txn.Frames), g.txns[i].pgnos) || txn.DBSize != g.txns[i].dbSize || txn.End != g.txns[i].end {
					t.Errorf("txn %d = pages %v size %d end %d, want %+v", i, pgnos(txn.Frames), txn.DBSize, txn.End, g.txns[i])
				}
				want = txn.Next
			}
			if pos != want {
				t.Errorf("returned position %+v, want %+v", pos, want)
			}
			if n := chainValidFrames(t, b, h, pos); n != g.uncommitted {
				t.Errorf("%d chain-valid uncommitted frames after the log, want %d", n, g.uncommitted)
			}
			if stale := pos.Offset+FrameHeaderSize <= int64(len(b)) &&
				binary.BigEndian.Uint32(b[pos.Offset+8:]) == h.Salt1-1; stale != g.stale {
				t.Errorf("stale frame after the log: %v, want %v", stale, g.stale)
			}
			checkResume(t, b, h, txns)
			for _, txn := range txns {
				for _, f := range txn.Frames {
					page, err := ReadPage(bytes.NewReader(b), h, f)
					if err != nil || !bytes.Equal(page, b[f.Offset+FrameHeaderSize:f.Offset+h.FrameSize()]) {
						t.Fatalf("ReadPage(%+v) = %d bytes, %v", f, len(page), err)
					}
				}
			}
		})
	}
}

// TestGoldenCoversFixtures makes sure every fixture has expectations.
func TestGoldenCoversFixtures(t *testing.T) {
	names, err := filepath.Glob("testdata/*.wal")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !slices.ContainsFunc(goldens, func(g golden) bool { return g.file == filepath.Base(name) }) {
			t.Errorf("%s has no entry in goldens", name)
		}
	}
	if len(names) != len(goldens) {
		t.Errorf("%d fixtures, %d golden entries", len(names), len(goldens))
	}
}

// TestBigEndianFixtureMatchesLittleEndian checks that the big-endian fixture
// holds exactly the frames of valid-512.wal, with different checksums.
func TestBigEndianFixtureMatchesLittleEndian(t *testing.T) {
	le, err := os.ReadFile("testdata/valid-512.wal")
	if err != nil {
		t.Fatal(err)
	}
	be, err := os.ReadFile("testdata/bigendian.wal")
	if err != nil {
		t.Fatal(err)
	}
	if len(le) != len(be) {
		t.Fatalf("sizes differ: %d and %d", len(le), len(be))
	}
	// Re-encoding our big-endian file as little-endian must give back the
	// bytes SQLite wrote, salts and checksums included; otherwise the
	// encoder (and so the big-endian fixture) would be wrong.
	if !bytes.Equal(reencode(t, be, false), le) {
		t.Fatal("big-endian fixture does not re-encode to valid-512.wal")
	}
	if bytes.Equal(le[24:32], be[24:32]) {
		t.Fatal("header checksums are equal for both byte orders")
	}
}

func pgnos(frames []Frame) []uint32 {
	var p []uint32
	for _, f := range frames {
		p = append(p, f.Pgno)
	}
	return p
}

// checkTxn checks the invariants of a transaction that starts at start.
func checkTxn(t testing.TB, h Header, start int64, txn Txn) {
	t.Helper()
	fs := h.FrameSize()
	if len(txn.Frames) == 0 {
		t.Fatalf("txn without frames: %+v", txn)
	}
	for i, f := range txn.Frames {
		if f.Offset != start+int64(i)*fs {
			t.Fatalf("frame %d at offset %d, want %d", i, f.Offset, start+int64(i)*fs)
		}
		if f.Pgno == 0 {
			t.Fatalf("frame %d has page number 0", i)
		}
		if last := i == len(txn.Frames)-1; (f.Commit != 0) != last {
			t.Fatalf("frame %d of %d has commit %d", i, len(txn.Frames), f.Commit)
		}
	}
	last := txn.Frames[len(txn.Frames)-1]
	if txn.DBSize != last.Commit || txn.End != last.Offset+fs || txn.Next.Offset != txn.End ||
		txn.Next.Salt1 != h.Salt1 || txn.Next.Salt2 != h.Salt2 {
		t.Fatalf("inconsistent txn %+v", txn)
	}
}

// checkResume checks that resuming from each transaction's Next yields
// exactly the transactions after it.
func checkResume(t testing.TB, b []byte, h Header, txns []Txn) {
	t.Helper()
	for i := range txns {
		checkResumeAfter(t, b, h, txns, i)
	}
}

// checkResumeAfter checks that resuming from txns[i].Next yields exactly
// txns[i+1:] and the same final position.
func checkResumeAfter(t testing.TB, b []byte, h Header, txns []Txn, i int) {
	t.Helper()
	var rest []Txn
	pos, err := Scan(bytes.NewReader(b), h, txns[i].Next, func(txn Txn) error {
		rest = append(rest, txn)
		return nil
	})
	if err != nil {
		t.Fatalf("resuming after txn %d: %v", i, err)
	}
	if len(rest) != len(txns)-i-1 {
		t.Fatalf("resuming after txn %d: %d txns, want %d", i, len(rest), len(txns)-i-1)
	}
	for j := range rest {
		if !slices.Equal(rest[j].Frames, txns[i+1+j].Frames) || rest[j].Next != txns[i+1+j].Next {
			t.Fatalf("resuming after txn %d: txn %d differs", i, j)
		}
	}
	if pos != txns[len(txns)-1].Next {
		t.Fatalf("resuming after txn %d: position %+v", i, pos)
	}
}

// chainValidFrames independently walks the frames after pos, counting those
// with the header's salts and an intact checksum chain. All of them must be
// uncommitted, or the scan stopped too early.
func chainValidFrames(t testing.TB, b []byte, h Header, pos Position) int {
	t.Helper()
	be := binary.BigEndian
	s1, s2 := pos.Checksum1, pos.Checksum2
	n := 0
	for off := pos.Offset; off+h.FrameSize() <= int64(len(b)); off += h.FrameSize() {
		fr := b[off : off+h.FrameSize()]
		if be.Uint32(fr[0:]) == 0 || be.Uint32(fr[8:]) != h.Salt1 || be.Uint32(fr[12:]) != h.Salt2 {
			break
		}
		c1, c2 := Checksum(h.BigEndian(), s1, s2, fr[:8])
		c1, c2 = Checksum(h.BigEndian(), c1, c2, fr[FrameHeaderSize:])
		if c1 != be.Uint32(fr[16:]) || c2 != be.Uint32(fr[20:]) {
			break
		}
		if be.Uint32(fr[4:]) != 0 {
			t.Fatalf("committed frame at offset %d after the scanned log", off)
		}
		s1, s2 = c1, c2
		n++
	}
	return n
}
