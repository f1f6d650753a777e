package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

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
		f.Add(b)
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
			checkArbitraryWAL(t, b)
		}
	})
}

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
	checkResume(t, data, h, txns)
}
