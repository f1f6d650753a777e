package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// checkGolden compares scanned transactions with the expected ones.
func checkGolden(t testing.TB, h Header, got []Txn, want []goldenTxn) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d txns, want %d", len(got), len(want))
	}
	start := int64(HeaderSize)
	for i, txn := range got {
		checkTxn(t, h, start, txn)
		if !slices.Equal(pgnos(txn.Frames), want[i].pgnos) || txn.DBSize != want[i].dbSize || txn.End != want[i].end {
			t.Fatalf("txn %d = pages %v size %d end %d, want %+v", i, pgnos(txn.Frames), txn.DBSize, txn.End, want[i])
		}
		start = txn.End
	}
}

func TestScanSynthetic(t *testing.T) {
	page := func(w *walBuilder, b byte) []byte { return fillPage(int(w.h.PageSize), b) }
	tests := []struct {
		name     string
		pageSize uint32
		// build writes frames and may damage the result; the scan must
		// return the first want transactions the builder recorded.
		build func(w *walBuilder) []byte
		want  int
	}{
		{name: "header only", pageSize: 512, build: func(w *walBuilder) []byte { return w.bytes() }},
		{name: "one txn", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(1, 0, 1)
			return w.bytes()
		}},
		{name: "several txns", pageSize: 1024, want: 3, build: func(w *walBuilder) []byte {
			w.txn(3, 0, 1, 2, 3)
			w.txn(3, 1, 2)
			w.txn(4, 2, 4, 1, 4)
			return w.bytes()
		}},
		{name: "uncommitted frames after last commit", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.frame(3, 0, page(w, 3))
			w.frame(4, 0, page(w, 4))
			return w.bytes()
		}},
		{name: "page number 0 ends the log", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.frame(0, 3, page(w, 0))
			w.txn(3, 0, 3)
			return w.bytes()
		}},
		{name: "wrong salt-2 ends the log", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.txn(3, 0, 3)
			b := w.bytes()
			b[HeaderSize+2*536+15] ^= 1 // salts are not checksummed
			return b
		}},
		{name: "broken chain ends the log", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.txn(3, 0, 3, 1)
			w.txn(3, 0, 2)
			b := w.bytes()
			b[HeaderSize+2*536+FrameHeaderSize+511] ^= 1
			return b
		}},
		{name: "changed commit field ends the log", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.txn(3, 0, 3)
			b := w.bytes()
			binary.BigEndian.PutUint32(b[HeaderSize+2*536+4:], 4)
			return b
		}},
		{name: "torn frame header", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.txn(3, 0, 3)
			return w.bytes()[:HeaderSize+2*536+10]
		}},
		{name: "torn page", pageSize: 512, want: 1, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.txn(3, 0, 3)
			return w.bytes()[:HeaderSize+3*536-1]
		}},
		{name: "big-endian checksums", pageSize: 4096, want: 2, build: func(w *walBuilder) []byte {
			w.txn(2, 0, 1, 2)
			w.txn(3, 0, 3)
			return w.bytes()
		}},
		// One-frame transactions exactly filling the first read.
		{name: "log ends on a read boundary", pageSize: 512, want: initialChunk / 536, build: func(w *walBuilder) []byte {
			for i := range initialChunk / 536 {
				w.txn(100, byte(i), uint32(i+1))
			}
			return w.bytes()
		}},
		// ... and the first two reads (the second one twice as large).
		{name: "log ends on a later read boundary", pageSize: 512, want: 3 * (initialChunk / 536), build: func(w *walBuilder) []byte {
			for i := range 3 * (initialChunk / 536) {
				w.txn(100, byte(i), uint32(i+1))
			}
			return w.bytes()
		}},
		{name: "txns straddle reads", pageSize: 512, want: 142, build: func(w *walBuilder) []byte {
			for i := range 142 {
				w.txn(200, byte(i), 1, 2, 3, 4, 5, 6, uint32(i+7))
			}
			w.frame(9, 0, page(w, 9))
			return w.bytes()
		}},
		{name: "max page size straddling reads", pageSize: 65536, want: 3, build: func(w *walBuilder) []byte {
			for i := range 3 {
				w.txn(10, byte(i), 1, 2, 3, 4, 5, 6, 7)
			}
			return w.bytes()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWALBuilder(NewHeader(tt.name == "big-endian checksums", tt.pageSize, 3, 0xdeadbeef, 0x01020304))
			b := tt.build(w)
			h, txns, pos := scanAll(t, b)
			checkGolden(t, h, txns, w.txns[:tt.want])
			if want := HeaderPosition(h); tt.want > 0 {
				want = txns[tt.want-1].Next
				if pos != want {
					t.Fatalf("position %+v, want %+v", pos, want)
				}
			} else if pos != want {
				t.Fatalf("position %+v, want %+v", pos, want)
			}
			checkResume(t, b, h, txns)
		})
	}
}

// TestScanFrom checks Scan's validation of the resume position.
func TestScanFrom(t *testing.T) {
	h := NewHeader(false, 512, 0, 41, 42)
	w := newWALBuilder(h)
	w.txn(2, 0, 1, 2)
	w.txn(3, 0, 3)
	w.txn(5, 0, 4, 5, 1)
	w.frame(6, 0, fillPage(512, 6))
	b := w.bytes()
	_, txns, end := scanAll(t, b)
	fs := h.FrameSize()

	// The position just after frame 0, which is not a commit frame.
	mid := Position{Offset: HeaderSize + fs, Salt1: 41, Salt2: 42,
		Checksum1: binary.BigEndian.Uint32(b[HeaderSize+16:]), Checksum2: binary.BigEndian.Uint32(b[HeaderSize+20:])}

	// The same file after a reset: a new generation overwrote the first two
	// frames and left the rest as a stale tail.
	h2 := NewHeader(false, 512, 1, 42, 7)
	w2 := newWALBuilder(h2)
	w2.txn(1, 9, 1, 1)
	reset := append(w2.bytes(), b[len(w2.buf):]...)

	with := func(p Position, fn func(*Position)) Position { fn(&p); return p }
	tests := []struct {
		name    string
		b       []byte
		h       Header
		from    Position
		want    int   // transactions expected, counted from the end of txns
		wantErr error // nil, ErrReset, or errBadPosition for other errors
	}{
		{name: "header", b: b, h: h, from: HeaderPosition(h), want: 3},
		{name: "after txn 0", b: b, h: h, from: txns[0].Next, want: 2},
		{name: "after txn 1", b: b, h: h, from: txns[1].Next, want: 1},
		{name: "at end", b: b, h: h, from: end, want: 0},
		{name: "other salt-1", b: b, h: h, from: with(txns[0].Next, func(p *Position) { p.Salt1++ }), wantErr: ErrReset},
		{name: "other salt-2", b: b, h: h, from: with(HeaderPosition(h), func(p *Position) { p.Salt2++ }), wantErr: ErrReset},
		{name: "other header checksum", b: b, h: h, from: with(HeaderPosition(h), func(p *Position) { p.Checksum1++ }), wantErr: ErrReset},
		{name: "other frame checksum", b: b, h: h, from: with(txns[1].Next, func(p *Position) { p.Checksum2++ }), wantErr: ErrReset},
		{name: "previous frame gone", b: b[:txns[1].End-1], h: h, from: txns[1].Next, wantErr: ErrReset},
		{name: "beyond end of file", b: b, h: h, from: with(end, func(p *Position) { p.Offset += 4 * fs }), wantErr: ErrReset},
		{name: "previous frame overwritten", b: reset, h: h, from: txns[0].Next, wantErr: ErrReset},
		{name: "new header, old position", b: reset, h: h2, from: txns[0].Next, wantErr: ErrReset},
		{name: "not a frame boundary", b: b, h: h, from: with(txns[0].Next, func(p *Position) { p.Offset++ }), wantErr: errBadPosition},
		{name: "inside header", b: b, h: h, from: with(HeaderPosition(h), func(p *Position) { p.Offset = 0 }), wantErr: errBadPosition},
		{name: "huge offset", b: b, h: h, from: with(end, func(p *Position) { p.Offset += (1 << 62) / fs * fs }), wantErr: errBadPosition},
		{name: "inside a transaction", b: b, h: h, from: mid, wantErr: errBadPosition},
		{name: "invalid header", b: b, h: Header{Magic: MagicLE, Version: Version, PageSize: 100}, from: HeaderPosition(h), wantErr: ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Txn
			pos, err := Scan(bytes.NewReader(tt.b), tt.h, tt.from, func(txn Txn) error {
				got = append(got, txn)
				return nil
			})
			switch {
			case tt.wantErr == errBadPosition:
				if err == nil || errors.Is(err, ErrReset) {
					t.Fatalf("Scan = %v, want a bad position error", err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Scan = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("Scan: %v", err)
			}
			if err != nil {
				if pos != tt.from || len(got) != 0 {
					t.Fatalf("failed Scan returned %+v and %d txns", pos, len(got))
				}
				return
			}
			if !slices.EqualFunc(got, txns[len(txns)-tt.want:], func(a, b Txn) bool {
				return slices.Equal(a.Frames, b.Frames) && a.Next == b.Next
			}) || pos != end {
				t.Fatalf("Scan = %d txns, position %+v", len(got), pos)
			}
		})
	}
}

// errBadPosition marks, in TestScanFrom, an expected error that is neither
// ErrReset nor ErrBadHeader.
var errBadPosition = errors.New("bad position")

func TestScanCallbackError(t *testing.T) {
	w := newWALBuilder(NewHeader(false, 512, 0, 1, 2))
	w.txn(1, 0, 1)
	w.txn(2, 0, 2)
	w.txn(3, 0, 3)
	b := w.bytes()
	_, txns, _ := scanAll(t, b)
	stop := errors.New("stop")
	calls := 0
	pos, err := Scan(bytes.NewReader(b), w.h, HeaderPosition(w.h), func(Txn) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 || pos != txns[0].Next {
		t.Fatalf("Scan = %+v, %v after %d calls; want %+v, %v after 2", pos, err, calls, txns[0].Next, stop)
	}
}

func TestScanIOError(t *testing.T) {
	w := newWALBuilder(NewHeader(false, 512, 0, 1, 2))
	for i := range 300 {
		w.txn(9, byte(i), 1, 2, 3)
	}
	b := w.bytes()
	_, txns, _ := scanAll(t, b)
	for _, failAt := range []int64{0, 100, 70000, 200000} {
		var got []Txn
		r := failingReader{b: b, failAt: failAt, err: errInjected}
		pos, err := Scan(r, w.h, HeaderPosition(w.h), func(txn Txn) error {
			got = append(got, txn)
			return nil
		})
		if !errors.Is(err, errInjected) {
			t.Fatalf("failAt %d: Scan = %v, want injected error", failAt, err)
		}
		want := HeaderPosition(w.h)
		if len(got) > 0 {
			want = got[len(got)-1].Next
			if got[len(got)-1].End > failAt || len(got) >= len(txns) {
				t.Fatalf("failAt %d: delivered txn ending at %d", failAt, got[len(got)-1].End)
			}
		}
		if pos != want {
			t.Fatalf("failAt %d: position %+v, want %+v", failAt, pos, want)
		}
	}
}

func TestScanNilCallback(t *testing.T) {
	w := newWALBuilder(NewHeader(true, 1024, 0, 5, 6))
	w.txn(2, 0, 1, 2)
	w.txn(2, 0, 2)
	w.frame(3, 0, fillPage(1024, 0))
	b := w.bytes()
	_, _, want := scanAll(t, b)
	pos, err := Scan(bytes.NewReader(b), w.h, HeaderPosition(w.h), nil)
	if err != nil || pos != want {
		t.Fatalf("Scan = %+v, %v; want %+v", pos, err, want)
	}
}

// TestScanIncremental follows a log as it grows, including while a frame is
// half written, the way a capture loop polls a live WAL: every transaction
// must be delivered exactly once, and only once its commit frame is whole.
func TestScanIncremental(t *testing.T) {
	w := newWALBuilder(NewHeader(false, 512, 0, 1, 2))
	pos := HeaderPosition(w.h)
	var got []Txn
	poll := func(b []byte) {
		t.Helper()
		var err error
		pos, err = Scan(bytes.NewReader(b), w.h, pos, func(txn Txn) error {
			got = append(got, txn)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		pgnos := make([]uint32, 1+i%4)
		for j := range pgnos {
			pgnos[j] = uint32(j + 1)
		}
		w.txn(10, byte(i), pgnos...)
		b := w.bytes()
		poll(b[:len(b)-1]) // commit frame torn: nothing new
		if len(got) != i {
			t.Fatalf("after torn txn %d: %d txns", i, len(got))
		}
		poll(b)
		if len(got) != i+1 || pos.Offset != int64(len(b)) {
			t.Fatalf("after txn %d: %d txns, position %d of %d", i, len(got), pos.Offset, len(b))
		}
	}
	checkGolden(t, w.h, got, w.txns)
}

func TestTxnPages(t *testing.T) {
	f := func(pgno, commit uint32, off int64) Frame { return Frame{Pgno: pgno, Commit: commit, Offset: off} }
	tests := []struct {
		name string
		txn  Txn
		want []Frame
	}{
		{name: "single", txn: Txn{DBSize: 1, Frames: []Frame{f(1, 1, 32)}}, want: []Frame{f(1, 1, 32)}},
		{
			name: "last frame of each page wins, sorted",
			txn:  Txn{DBSize: 5, Frames: []Frame{f(5, 0, 1), f(2, 0, 2), f(5, 0, 3), f(1, 0, 4), f(2, 5, 5)}},
			want: []Frame{f(1, 0, 4), f(2, 5, 5), f(5, 0, 3)},
		},
		{
			name: "pages beyond the committed size are dropped",
			txn:  Txn{DBSize: 3, Frames: []Frame{f(4, 0, 1), f(7, 0, 2), f(3, 0, 3), f(1, 3, 4)}},
			want: []Frame{f(1, 3, 4), f(3, 0, 3)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.txn.Pages(); !slices.Equal(got, tt.want) {
				t.Fatalf("Pages = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadPage(t *testing.T) {
	h := NewHeader(false, 512, 0, 10, 20)
	w := newWALBuilder(h)
	w.txn(2, 0, 1, 2)
	w.txn(3, 7, 3)
	b := w.bytes()
	_, txns, _ := scanAll(t, b)
	f := txns[1].Frames[0]

	h2 := NewHeader(false, 512, 1, 11, 21)
	w2 := newWALBuilder(h2)
	w2.txn(3, 1, 1, 2, 3)
	reset := w2.bytes()

	tests := []struct {
		name    string
		r       failingReader
		h       Header
		f       Frame
		wantErr error
	}{
		{name: "valid", r: failingReader{b: b, failAt: 1 << 40}, h: h, f: f},
		{name: "overwritten by a new generation", r: failingReader{b: reset, failAt: 1 << 40}, h: h, f: f, wantErr: ErrReset},
		{name: "page changed", r: failingReader{b: flip(bytes.Clone(b), int(f.Offset)+FrameHeaderSize+3), failAt: 1 << 40}, h: h, f: f, wantErr: ErrReset},
		{name: "other frame", r: failingReader{b: b, failAt: 1 << 40}, h: h, f: txns[0].Frames[1], wantErr: nil},
		{name: "wrong seed", r: failingReader{b: b, failAt: 1 << 40}, h: h, f: Frame{Pgno: f.Pgno, Commit: f.Commit, Offset: f.Offset}, wantErr: ErrReset},
		{name: "truncated", r: failingReader{b: b[:len(b)-1], failAt: 1 << 40}, h: h, f: f, wantErr: ErrReset},
		{name: "I/O error", r: failingReader{b: b, failAt: 0, err: errInjected}, h: h, f: f, wantErr: errInjected},
		{name: "offset in header", r: failingReader{b: b, failAt: 1 << 40}, h: h, f: Frame{Pgno: 1, Offset: 0}, wantErr: errBadPosition},
		{name: "invalid header", r: failingReader{b: b, failAt: 1 << 40}, h: Header{}, f: f, wantErr: ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := ReadPage(tt.r, tt.h, tt.f)
			switch {
			case tt.wantErr == errBadPosition:
				if err == nil || errors.Is(err, ErrReset) {
					t.Fatalf("ReadPage = %v, want an offset error", err)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReadPage = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("ReadPage: %v", err)
			default:
				want := tt.r.b[tt.f.Offset+FrameHeaderSize : tt.f.Offset+h.FrameSize()]
				if !bytes.Equal(page, want) {
					t.Fatal("ReadPage returned other bytes")
				}
			}
		})
	}
}

// TestScannerReuse: one Scanner used for every fixture in turn, twice (so
// that a buffer grown by a long WAL, and holding its bytes, serves a short
// one), finds what a fresh Scan finds.
func TestScannerReuse(t *testing.T) {
	var s Scanner
	for round := range 2 {
		for _, g := range goldens {
			b, err := os.ReadFile(filepath.Join("testdata", g.file))
			if err != nil {
				t.Fatal(err)
			}
			h, want, wantPos := scanAll(t, b)
			var got []Txn
			pos, err := s.Scan(bytes.NewReader(b), h, HeaderPosition(h), func(txn Txn) error {
				got = append(got, txn)
				return nil
			})
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, g.file, err)
			}
			if pos != wantPos || !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, %s: reused scanner found %d txns ending at %+v, want %d ending at %+v", round, g.file, len(got), pos, len(want), wantPos)
			}
		}
	}
	if s.Buffered() == 0 {
		t.Fatal("the scanner kept no buffer")
	}
}
