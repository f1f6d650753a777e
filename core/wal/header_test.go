package wal

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseHeader(t *testing.T) {
	valid := NewHeader(false, 4096, 7, 0x11223344, 0x55667788)
	tests := []struct {
		name    string
		b       []byte
		want    Header
		wantErr bool
	}{
		{name: "little-endian", b: valid.Encode(), want: valid},
		{name: "big-endian", b: NewHeader(true, 512, 0, 1, 2).Encode(), want: NewHeader(true, 512, 0, 1, 2)},
		{name: "page size 65536 stored literally", b: NewHeader(false, 65536, 1, 1, 2).Encode(), want: NewHeader(false, 65536, 1, 1, 2)},
		{name: "trailing bytes ignored", b: append(valid.Encode(), 1, 2, 3), want: valid},
		{name: "empty", b: nil, wantErr: true},
		{name: "short", b: valid.Encode()[:31], wantErr: true},
		{name: "bad magic", b: resealed(func(h *Header) { h.Magic = 0x377f0684 }), wantErr: true},
		{name: "bad version", b: resealed(func(h *Header) { h.Version = 3007001 }), wantErr: true},
		{name: "page size 0", b: resealed(func(h *Header) { h.PageSize = 0 }), wantErr: true},
		// 1 is how the database header encodes 65536; the WAL header never does.
		{name: "page size 1", b: resealed(func(h *Header) { h.PageSize = 1 }), wantErr: true},
		{name: "page size 256", b: resealed(func(h *Header) { h.PageSize = 256 }), wantErr: true},
		{name: "page size 1000", b: resealed(func(h *Header) { h.PageSize = 1000 }), wantErr: true},
		{name: "page size 131072", b: resealed(func(h *Header) { h.PageSize = 131072 }), wantErr: true},
		{name: "bad checksum1", b: flip(valid.Encode(), 24), wantErr: true},
		{name: "bad checksum2", b: flip(valid.Encode(), 31), wantErr: true},
		{name: "salt not matching checksum", b: flip(valid.Encode(), 17), wantErr: true},
		{name: "checkpoint seq not matching checksum", b: flip(valid.Encode(), 12), wantErr: true},
		{name: "checksum of other byte order", b: resealed(func(h *Header) { h.Magic = MagicBE }), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeader(tt.b)
			if tt.wantErr {
				if !errors.Is(err, ErrBadHeader) {
					t.Fatalf("ParseHeader = %+v, %v; want ErrBadHeader", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseHeader = %+v, %v; want %+v", got, err, tt.want)
			}
			if !bytes.Equal(got.Encode(), tt.b[:HeaderSize]) {
				t.Fatal("Encode does not round-trip")
			}
		})
	}
}

// resealed returns a header modified by fn whose checksum is recomputed for
// the modified fields, so only the modification itself can be rejected.
func resealed(fn func(*Header)) []byte {
	h := NewHeader(false, 4096, 7, 0x11223344, 0x55667788)
	fn(&h)
	b := h.Encode()
	h.Checksum1, h.Checksum2 = Checksum(false, 0, 0, b[:24])
	return h.Encode()
}

func flip(b []byte, i int) []byte {
	b[i] ^= 1
	return b
}

func TestHeaderAccessors(t *testing.T) {
	for _, tt := range []struct {
		h         Header
		bigEndian bool
		frameSize int64
	}{
		{NewHeader(false, 512, 0, 0, 0), false, 536},
		{NewHeader(true, 4096, 0, 0, 0), true, 4120},
		{NewHeader(true, 65536, 0, 0, 0), true, 65560},
	} {
		if tt.h.BigEndian() != tt.bigEndian || tt.h.FrameSize() != tt.frameSize {
			t.Errorf("%+v: BigEndian %v FrameSize %d", tt.h, tt.h.BigEndian(), tt.h.FrameSize())
		}
	}
}

func TestReadHeader(t *testing.T) {
	valid := NewHeader(false, 1024, 3, 9, 10)
	tests := []struct {
		name    string
		r       failingReader
		wantErr error
	}{
		{name: "valid", r: failingReader{b: append(valid.Encode(), make([]byte, 100)...), failAt: 1 << 40}},
		{name: "exactly a header", r: failingReader{b: valid.Encode(), failAt: 1 << 40}},
		{name: "empty file", r: failingReader{failAt: 1 << 40}, wantErr: ErrBadHeader},
		{name: "short file", r: failingReader{b: valid.Encode()[:20], failAt: 1 << 40}, wantErr: ErrBadHeader},
		{name: "I/O error", r: failingReader{b: valid.Encode(), failAt: 0, err: errInjected}, wantErr: errInjected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ReadHeader(tt.r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReadHeader = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || h != valid {
				t.Fatalf("ReadHeader = %+v, %v", h, err)
			}
		})
	}
}
