package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// TestMain caps the fuzzer's minimisation of each new interesting input at
// 2s unless -fuzzminimizetime is given. Go's minimiser makes a number of
// attempts quadratic in the input's length, and WAL inputs are kilobytes
// long, so with the default 60s a one-minute fuzzing run would do little but
// minimise.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		if err := flag.Set("test.fuzzminimizetime", "2s"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// FuzzScan treats any byte string as a WAL file. Reading its header and
// scanning it must never panic or fail other than with ErrBadHeader, every
// read must stay within maxChunk whatever the header claims, and every
// transaction returned must be well-formed, lie within the input, read back
// with ReadPage, resume consistently, and be followed by no committed frame.
func FuzzScan(f *testing.F) {
	names, err := filepath.Glob("testdata/*.wal")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// The fuzzer minimises every input that finds new coverage, which
		// takes time proportional to its size: large seeds would leave it
		// minimising most of the time. Larger fixtures contribute a prefix
		// with their first transactions and a torn frame.
		f.Add(b[:min(len(b), maxFuzzSeed)])
	}
	w := newWALBuilder(NewHeader(true, 512, 0, 1, 2))
	w.txn(2, 0, 1, 2)
	w.txn(1, 0, 1)
	w.frame(3, 0, fillPage(512, 3))
	f.Add(w.bytes())
	f.Add(NewHeader(false, 65536, 0, 0, 0).Encode())
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		checkArbitraryWAL(t, data)
		// Reseal the header checksum too, so that mutations of the other
		// header fields still get past it to the frames.
		if len(data) >= HeaderSize {
			b := bytes.Clone(data)
			c1, c2 := Checksum(b[3]&1 == 1, 0, 0, b[:24])
			binary.BigEndian.PutUint32(b[24:], c1)
			binary.BigEndian.PutUint32(b[28:], c2)
			if !bytes.Equal(b[24:32], data[24:32]) {
				checkArbitraryWAL(t, b)
			}
		}
	})
}

// maxFuzzSeed caps the size of each seed taken from testdata.
const maxFuzzSeed = 4 << 10

func checkArbitraryWAL(t *testing.T, data []byte) {
	r := &countingReader{b: data}
	h, err := ReadHeader(r)
	if err != nil {
		if !errors.Is(err, ErrBadHeader) {
			t.Fatalf("ReadHeader: %v", err)
		}
		return
	}
	var txns []Txn
	pos, err := Scan(r, h, HeaderPosition(h), func(txn Txn) error {
		txns = append(txns, txn)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if r.maxRead > maxChunk {
		t.Fatalf("read of %d bytes", r.maxRead)
	}
	want := HeaderPosition(h)
	for _, txn := range txns {
		checkTxn(t, h, want.Offset, txn)
		if txn.End > int64(len(data)) {
			t.Fatalf("txn ends at %d, beyond the %d-byte input", txn.End, len(data))
		}
		for _, f := range txn.Frames {
			page, err := ReadPage(r, h, f)
			if err != nil || !bytes.Equal(page, data[f.Offset+FrameHeaderSize:f.Offset+h.FrameSize()]) {
				t.Fatalf("ReadPage(%+v): %v", f, err)
			}
		}
		want = txn.Next
	}
	if pos != want || pos.Offset > max(int64(len(data)), HeaderSize) {
		t.Fatalf("position %+v, want %+v", pos, want)
	}
	chainValidFrames(t, data, h, pos)
	if len(txns) > 0 {
		checkResumeAfter(t, data, h, txns, 0)
		checkResumeAfter(t, data, h, txns, len(txns)-1)
	}
}
