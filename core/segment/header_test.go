package segment

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHeaderRoundTrip(t *testing.T) {
	pages := makePages(512, 1, 1, 2, 3)
	for _, hdr := range []Header{
		segmentHeader(CompressionLZ4, 512, 3, pages),
		snapshotHeader(CompressionZstd, 512, pages),
		{
			Kind: KindSegment, Compression: CompressionNone, Encryption: 7,
			PageSize: 65536, Generation: strings.Repeat("Z", MaxGenerationLen),
			MinTXID: 1, MaxTXID: ^uint64(0), DBSize: ^uint32(0),
			FirstCommit: -1 << 63, LastCommit: 1<<63 - 1,
			ChecksumBefore: ^Checksum(0), PageCount: ^uint32(0) - 1,
		},
	} {
		b, err := EncodeHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != HeaderSize {
			t.Fatalf("encoded %d bytes", len(b))
		}
		got, err := DecodeHeader(append(b, "trailing bytes are ignored"...))
		if err != nil {
			t.Fatal(err)
		}
		if got != hdr {
			t.Fatalf("got %+v\nwant %+v", got, hdr)
		}
		if got, err := ReadHeader(bytes.NewReader(b)); err != nil || got != hdr {
			t.Fatalf("ReadHeader: %+v, %v", got, err)
		}
	}
	hdr := segmentHeader(CompressionLZ4, 512, 3, pages)
	if !hdr.FirstCommitTime().Equal(time.Unix(0, hdr.FirstCommit)) || hdr.LastCommitTime().UnixNano() != hdr.LastCommit {
		t.Error("commit time helpers")
	}
}

func TestHeaderValidate(t *testing.T) {
	base := segmentHeader(CompressionLZ4, 4096, 100, make([]page, 10))
	snap := snapshotHeader(CompressionLZ4, 4096, makePages(4096, 1, 1, 2, 3))
	lock := LockPage(4096)
	cases := []struct {
		name string
		base Header
		edit func(*Header)
		ok   bool
	}{
		{"valid segment", base, func(*Header) {}, true},
		{"valid snapshot", snap, func(*Header) {}, true},
		{"kind 0", base, func(h *Header) { h.Kind = 0 }, false},
		{"kind 3", base, func(h *Header) { h.Kind = 3 }, false},
		{"compression 3", base, func(h *Header) { h.Compression = 3 }, false},
		{"page size 0", base, func(h *Header) { h.PageSize = 0 }, false},
		{"page size 256", base, func(h *Header) { h.PageSize = 256 }, false},
		{"page size 1000", base, func(h *Header) { h.PageSize = 1000 }, false},
		{"page size 131072", base, func(h *Header) { h.PageSize = 131072 }, false},
		{"page size 512", base, func(h *Header) { h.PageSize = 512 }, true},
		{"page size 65536", base, func(h *Header) { h.PageSize = 65536 }, true},
		{"empty generation", base, func(h *Header) { h.Generation = "" }, false},
		{"long generation", base, func(h *Header) { h.Generation = strings.Repeat("a", 33) }, false},
		{"generation with slash", base, func(h *Header) { h.Generation = "a/b" }, false},
		{"generation dot dot", base, func(h *Header) { h.Generation = ".." }, false},
		{"min txid 0", base, func(h *Header) { h.MinTXID = 0 }, false},
		{"min > max", base, func(h *Header) { h.MinTXID = h.MaxTXID + 1 }, false},
		{"min == max", base, func(h *Header) { h.MinTXID = h.MaxTXID }, true},
		{"empty", base, func(h *Header) { h.PageCount = 0 }, false},
		{"more pages than db", base, func(h *Header) { h.PageCount = h.DBSize + 1 }, false},
		{"all pages", base, func(h *Header) { h.PageCount = h.DBSize }, true},
		{"all pages past lock page", base, func(h *Header) { h.DBSize, h.PageCount = lock+1, lock+1 }, false},
		{"all but lock page", base, func(h *Header) { h.DBSize, h.PageCount = lock+1, lock }, true},
		{"unordered commit times", base, func(h *Header) { h.FirstCommit = h.LastCommit + 1 }, true},
		{"encryption is not checked", base, func(h *Header) { h.Encryption = 9 }, true},
		{"snapshot txid range", snap, func(h *Header) { h.MinTXID-- }, false},
		{"snapshot commit times", snap, func(h *Header) { h.FirstCommit-- }, false},
		{"snapshot checksums", snap, func(h *Header) { h.ChecksumBefore++ }, false},
		{"snapshot missing a page", snap, func(h *Header) { h.PageCount-- }, false},
		{"snapshot past lock page", snap, func(h *Header) { h.DBSize, h.PageCount = lock+1, lock }, true},
		{"snapshot with lock page", snap, func(h *Header) { h.DBSize, h.PageCount = lock+1, lock+1 }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.base
			tc.edit(&h)
			err := h.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			_, encErr := EncodeHeader(h)
			if (encErr == nil) != tc.ok {
				t.Fatalf("EncodeHeader: %v, want ok=%v", encErr, tc.ok)
			}
			// A header that fails Validate but carries a good CRC is
			// still corrupt: it came from a broken writer.
			_, decErr := DecodeHeader(rawHeader(h))
			if tc.ok {
				if decErr != nil {
					t.Fatalf("DecodeHeader: %v", decErr)
				}
			} else if !errors.Is(decErr, ErrCorrupt) {
				t.Fatalf("DecodeHeader: %v, want ErrCorrupt", decErr)
			}
		})
	}
}

func TestDecodeHeaderDamage(t *testing.T) {
	good := rawHeader(segmentHeader(CompressionLZ4, 512, 3, make([]page, 3)))
	edit := func(f func(b []byte), reseal bool) []byte {
		b := bytes.Clone(good)
		f(b)
		if reseal {
			sealHeader(b)
		}
		return b
	}
	cases := []struct {
		name        string
		b           []byte
		unsupported bool
	}{
		{"empty", nil, false},
		{"short", good[:HeaderSize-1], false},
		{"magic", edit(func(b []byte) { b[0] = 'X' }, true), false},
		{"version 0", edit(func(b []byte) { b[9] = 0 }, true), false},
		{"version 2", edit(func(b []byte) { b[9] = 2 }, false), true},
		{"crc", edit(func(b []byte) { b[HeaderSize-1]++ }, false), false},
		{"field without reseal", edit(func(b []byte) { b[20]++ }, false), false},
		{"reserved 14", edit(func(b []byte) { b[14] = 1 }, true), false},
		{"reserved 28", edit(func(b []byte) { b[31] = 1 }, true), false},
		{"reserved 112", edit(func(b []byte) { b[123] = 1 }, true), false},
		{"generation padding", edit(func(b []byte) { b[63] = 'x' }, true), false},
		{"generation length 33", edit(func(b []byte) { b[13] = 33 }, true), false},
		{"generation length 0", edit(func(b []byte) { b[13] = 0 }, true), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeHeader(tc.b)
			if tc.unsupported {
				if !errors.Is(err, errors.ErrUnsupported) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("got %v, want ErrUnsupported", err)
				}
				return
			}
			wantCorrupt(t, err, "DecodeHeader")
			_, err = ReadHeader(bytes.NewReader(tc.b))
			wantCorrupt(t, err, "ReadHeader")
		})
	}
}

func TestCompressionText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Compression
		ok   bool
	}{
		{"", CompressionLZ4, true},
		{"lz4", CompressionLZ4, true},
		{" ZSTD ", CompressionZstd, true},
		{"none", CompressionNone, true},
		{"gzip", 0, false},
	} {
		got, err := ParseCompression(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCompression(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, c := range []Compression{CompressionNone, CompressionLZ4, CompressionZstd} {
		b, err := c.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Compression
		if err := back.UnmarshalText(b); err != nil || back != c {
			t.Errorf("%v: round trip gave %v, %v", c, back, err)
		}
	}
	if _, err := Compression(9).MarshalText(); err == nil {
		t.Error("marshalled an unknown compression")
	}
	if Compression(9).String() != "Compression(9)" || Kind(9).String() != "Kind(9)" ||
		KindSnapshot.String() != "snapshot" || KindSegment.String() != "segment" {
		t.Error("String methods")
	}
}

func TestBounds(t *testing.T) {
	for ps := uint32(MinPageSize); ps <= MaxPageSize; ps *= 2 {
		if got := maxBlockRaw(ps); got > MaxBlockRawSize || got < 1<<20 {
			t.Errorf("page size %d: block raw bound %d, want 1 MiB..%d", ps, got, MaxBlockRawSize)
		}
	}
	if LockPage(4096) != 262145 || LockPage(65536) != 16385 || LockPage(512) != 2097153 || LockPage(100) != 0 {
		t.Error("LockPage")
	}
}
