package wal

import "encoding/binary"

// Checksum continues SQLite's WAL checksum from (s1, s2) over b and returns
// the new pair. The algorithm is a Fibonacci-weighted sum over b read as
// 32-bit words two at a time:
//
//	for each pair of words (x0, x1):
//	    s1 += x0 + s2
//	    s2 += x1 + s1
//
// with 32-bit wrap-around. bigEndian selects how the words are read (the low
// bit of the WAL magic); header fields themselves are always big-endian and
// unaffected. The header checksum starts from (0, 0) over its first 24 bytes;
// each frame continues from the previous frame's checksum (or the header's)
// over its first 8 header bytes and then its page image.
//
// Checksum panics if len(b) is not a multiple of 8: SQLite never checksums
// such a buffer, so a call with one is a bug that silently ignoring the tail
// would hide.
func Checksum(bigEndian bool, s1, s2 uint32, b []byte) (uint32, uint32) {
	if len(b)%8 != 0 {
		panic("wal: Checksum of a buffer whose length is not a multiple of 8")
	}
	if bigEndian {
		for ; len(b) >= 8; b = b[8:] {
			s1 += binary.BigEndian.Uint32(b) + s2
			s2 += binary.BigEndian.Uint32(b[4:]) + s1
		}
		return s1, s2
	}
	for ; len(b) >= 8; b = b[8:] {
		s1 += binary.LittleEndian.Uint32(b) + s2
		s2 += binary.LittleEndian.Uint32(b[4:]) + s1
	}
	return s1, s2
}
