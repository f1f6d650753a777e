package segment

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// compressor compresses blocks for a Writer. lz4 uses the reference
// implementation's algorithm (CompressorCCompat): on 1 MiB blocks of mixed
// page data it measured about twice as fast as the package's default for
// the same ratio, and its output matches LZ4_compress_fast's.
type compressor struct {
	c   Compression
	lz  lz4.CompressorCCompat
	zst *zstd.Encoder
}

func newCompressor(c Compression) (*compressor, error) {
	cp := &compressor{c: c}
	if c == CompressionZstd {
		// One goroutine-free encoder per Writer; the block CRC makes the
		// frame checksum redundant.
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false),
			zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return nil, fmt.Errorf("segment: creating zstd encoder: %w", err)
		}
		cp.zst = enc
	}
	return cp, nil
}

// compress compresses raw into buf (reusing its capacity). It returns the
// compressed bytes, or ok == false if the block should be stored raw
// because compression would not make it smaller.
func (cp *compressor) compress(buf, raw []byte) (out []byte, ok bool) {
	switch cp.c {
	case CompressionLZ4:
		// A destination one byte short of raw makes lz4 give up early on
		// incompressible input; any failure just means "store raw".
		limit := len(raw) - 1
		if cap(buf) < limit {
			buf = make([]byte, limit)
		}
		n, err := cp.lz.CompressBlock(raw, buf[:limit])
		if err != nil || n <= 0 || n >= len(raw) {
			return buf[:0], false
		}
		return buf[:n], true
	case CompressionZstd:
		out = cp.zst.EncodeAll(raw, buf[:0])
		return out, len(out) < len(raw)
	}
	return buf[:0], false
}

// decompressor decompresses blocks for a Reader.
type decompressor struct {
	c   Compression
	zst *zstd.Decoder
}

func newDecompressor(c Compression) (*decompressor, error) {
	d := &decompressor{c: c}
	if c == CompressionZstd {
		// The cap limit makes DecodeAll stop at cap(dst) bytes, and the
		// memory and window limits bound what a hostile frame header can
		// make the decoder allocate. No goroutines: DecodeAll only.
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(MaxBlockRawSize),
			zstd.WithDecoderMaxWindow(2*MaxBlockRawSize))
		if err != nil {
			return nil, fmt.Errorf("segment: creating zstd decoder: %w", err)
		}
		d.zst = dec
	}
	return d, nil
}

// decompress decodes stored into dst, which has exactly the declared raw
// length. Its errors describe damage; the caller wraps them in ErrCorrupt.
func (d *decompressor) decompress(dst, stored []byte) error {
	switch d.c {
	case CompressionLZ4:
		n, err := lz4.UncompressBlock(stored, dst)
		if err != nil {
			return err // says "lz4: ..."
		}
		if n != len(dst) {
			return fmt.Errorf("lz4 block decoded to %d bytes, want %d", n, len(dst))
		}
		return nil
	case CompressionZstd:
		out, err := d.zst.DecodeAll(stored, dst[:0:len(dst)])
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		if len(out) != len(dst) {
			return fmt.Errorf("zstd block decoded to %d bytes, want %d", len(out), len(dst))
		}
		if &out[0] != &dst[0] {
			// Unreachable with the cap limit; kept so a library change
			// cannot silently hand back bytes outside dst.
			return errors.New("zstd decoded outside the destination buffer")
		}
		return nil
	}
	return fmt.Errorf("compressed block in an object with compression %v", d.c)
}

// grow returns buf resized to n bytes, reallocating (at most to limit) when
// its capacity is short. Doubling amortises blocks of varying size; the
// limit keeps a reader's buffers within the format's bounds.
func grow(buf []byte, n, limit int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	c := max(n, min(2*cap(buf), limit))
	return make([]byte, n, c)
}
