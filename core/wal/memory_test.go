package wal

import (
	"encoding/binary"
	"io"
	"runtime"
	"sync"
	"testing"
)

// virtualWAL is an io.ReaderAt over a large valid WAL that exists only as
// arithmetic: every page is zeros, so only each frame's checksum is stored
// (8 bytes per frame), which lets a test scan a 1 GiB log without 1 GiB.
type virtualWAL struct {
	h      Header
	txnLen int
	sums   []uint32 // checksum pair of frame i at 2i, 2i+1

	hdr []byte // encoded header

	mu      sync.Mutex // guards the fields below and serialises ReadAt
	calls   int
	maxRead int
	fh      [FrameHeaderSize]byte // scratch, so reads allocate nothing
}

func newVirtualWAL(h Header, frames, txnLen int) *virtualWAL {
	v := &virtualWAL{h: h, txnLen: txnLen, sums: make([]uint32, 0, 2*frames), hdr: h.Encode()}
	zero := make([]byte, h.PageSize)
	s1, s2 := h.Checksum1, h.Checksum2
	for i := range frames {
		v.frameHeader(i)
		s1, s2 = Checksum(h.BigEndian(), s1, s2, v.fh[:8])
		s1, s2 = Checksum(h.BigEndian(), s1, s2, zero)
		v.sums = append(v.sums, s1, s2)
	}
	return v
}

func (v *virtualWAL) frames() int       { return len(v.sums) / 2 }
func (v *virtualWAL) size() int64       { return HeaderSize + int64(v.frames())*v.h.FrameSize() }
func (v *virtualWAL) txns() int         { return v.frames() / v.txnLen }
func (v *virtualWAL) pgno(i int) uint32 { return uint32(i%1000) + 1 }

// frameHeader writes the header of frame i into v.fh.
func (v *virtualWAL) frameHeader(i int) {
	b := v.fh[:]
	clear(b)
	be := binary.BigEndian
	be.PutUint32(b[0:], v.pgno(i))
	if (i+1)%v.txnLen == 0 {
		be.PutUint32(b[4:], 1000)
	}
	be.PutUint32(b[8:], v.h.Salt1)
	be.PutUint32(b[12:], v.h.Salt2)
	if 2*i+1 < len(v.sums) {
		be.PutUint32(b[16:], v.sums[2*i])
		be.PutUint32(b[20:], v.sums[2*i+1])
	}
}

func (v *virtualWAL) ReadAt(p []byte, off int64) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	v.maxRead = max(v.maxRead, len(p))
	fs := v.h.FrameSize()
	n := 0
	for n < len(p) {
		o := off + int64(n)
		switch {
		case o >= v.size():
			return n, io.EOF
		case o < HeaderSize:
			n += copy(p[n:], v.hdr[o:])
		default:
			i, within := (o-HeaderSize)/fs, (o-HeaderSize)%fs
			if within < FrameHeaderSize {
				v.frameHeader(int(i))
				n += copy(p[n:], v.fh[within:])
				continue
			}
			k := min(int64(len(p)-n), fs-within)
			clear(p[n : n+int(k)])
			n += int(k)
		}
	}
	return n, nil
}

// TestScanBoundedMemory scans a 1 GiB log (32 MiB with -short or -race) and
// checks that Scan's memory stays small and independent of the log size —
// no page data is kept — and that it reads in large chunks, not per frame.
func TestScanBoundedMemory(t *testing.T) {
	size := 1 << 30
	if testing.Short() || raceEnabled {
		size = 32 << 20
	}
	h := NewHeader(false, 4096, 0, 1, 2)
	v := newVirtualWAL(h, size/int(h.FrameSize()), 64)

	var before, now runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak uint64
	n := 0
	pos, err := Scan(v, h, HeaderPosition(h), func(txn Txn) error {
		if n++; n%64 == 0 {
			runtime.ReadMemStats(&now)
			peak = max(peak, now.HeapAlloc)
		}
		return nil
	})
	runtime.ReadMemStats(&now)
	if err != nil {
		t.Fatal(err)
	}
	wantEnd := HeaderSize + int64(v.txns()*v.txnLen)*h.FrameSize()
	if n != v.txns() || pos.Offset != wantEnd {
		t.Fatalf("scanned %d txns to %d, want %d to %d", n, pos.Offset, v.txns(), wantEnd)
	}
	growth := int64(peak) - int64(before.HeapAlloc)
	perFrame := (now.TotalAlloc - before.TotalAlloc - min(now.TotalAlloc-before.TotalAlloc, 3*maxChunk)) / uint64(v.frames())
	t.Logf("scanned %d MiB in %d reads (largest %d bytes); heap grew at most %d KiB; %d bytes allocated per frame",
		v.size()>>20, v.calls, v.maxRead, growth>>10, perFrame)
	// The heap holds one read buffer (at most maxChunk) and the Frame
	// records of the transaction at hand, plus garbage the collector has not
	// reclaimed yet; its growth must not depend on the size of the log.
	if growth > 16<<20 {
		t.Errorf("heap grew by %d bytes during the scan", growth)
	}
	// Beyond the read buffers (growing geometrically, less than
	// 3*maxChunk in all), every frame
	// costs a Frame record and slice growth, never its page.
	if perFrame > 128 {
		t.Errorf("%d bytes allocated per frame", perFrame)
	}
	if v.maxRead > maxChunk {
		t.Errorf("largest read %d bytes, limit %d", v.maxRead, maxChunk)
	}
	if maxReads := int(v.size()/(maxChunk-h.FrameSize())) + 10; v.calls > maxReads {
		t.Errorf("%d reads, limit %d", v.calls, maxReads)
	}
}
