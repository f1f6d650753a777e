package wal

import (
	"encoding/binary"
	"testing"
)

func TestChecksum(t *testing.T) {
	le := func(words ...uint32) []byte {
		b := make([]byte, 4*len(words))
		for i, w := range words {
			binary.LittleEndian.PutUint32(b[4*i:], w)
		}
		return b
	}
	tests := []struct {
		name      string
		bigEndian bool
		s1, s2    uint32
		b         []byte
		w1, w2    uint32
	}{
		{name: "empty keeps seed", s1: 5, s2: 6, b: nil, w1: 5, w2: 6},
		// s1 = 0+1+0 = 1; s2 = 0+2+1 = 3.
		{name: "one pair little-endian", b: le(1, 2), w1: 1, w2: 3},
		// Same bytes read big-endian: words 0x01000000 and 0x02000000.
		{name: "one pair big-endian", bigEndian: true, b: le(1, 2), w1: 0x01000000, w2: 0x03000000},
		// After (1,2): s1=1, s2=3; then (3,4): s1 = 1+3+3 = 7, s2 = 3+4+7 = 14.
		{name: "two pairs", b: le(1, 2, 3, 4), w1: 7, w2: 14},
		// s1 = 10+1+20 = 31; s2 = 20+2+31 = 53.
		{name: "seeded", s1: 10, s2: 20, b: le(1, 2), w1: 31, w2: 53},
		// s1 = 0xffffffff+1+0 = 0 (wraps); s2 = 0+1+0 = 1.
		{name: "wraps around", s1: 0xffffffff, s2: 0, b: le(1, 1), w1: 0, w2: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c1, c2 := Checksum(tt.bigEndian, tt.s1, tt.s2, tt.b)
			if c1 != tt.w1 || c2 != tt.w2 {
				t.Fatalf("Checksum = %#x %#x, want %#x %#x", c1, c2, tt.w1, tt.w2)
			}
		})
	}
}

// TestChecksumChains checks that checksumming in pieces equals checksumming
// at once, which is what lets frames chain from one another.
func TestChecksumChains(t *testing.T) {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(i * 31)
	}
	for _, bigEndian := range []bool{false, true} {
		a1, a2 := Checksum(bigEndian, 3, 4, b)
		s1, s2 := Checksum(bigEndian, 3, 4, b[:8])
		s1, s2 = Checksum(bigEndian, s1, s2, b[8:1024])
		s1, s2 = Checksum(bigEndian, s1, s2, b[1024:])
		if a1 != s1 || a2 != s2 {
			t.Errorf("bigEndian=%v: whole %x %x, pieces %x %x", bigEndian, a1, a2, s1, s2)
		}
	}
}

func TestChecksumPanicsOnPartialWords(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a 12-byte buffer")
		}
	}()
	Checksum(false, 0, 0, make([]byte, 12))
}

func BenchmarkChecksum(b *testing.B) {
	page := make([]byte, 4096)
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		Checksum(false, 1, 2, page)
	}
}
