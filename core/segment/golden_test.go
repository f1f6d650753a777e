package segment

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update regenerates the golden files: go test ./core/segment -run Golden -update
// Do that only for an intended format change (and bump Version), never to
// make a failing test pass.
var update = flag.Bool("update", false, "rewrite testdata golden files")

// goldenPage is the content of page pgno in the golden files. It is
// independent of the other tests' helpers so that editing those cannot
// change what the golden files must contain.
func goldenPage(pgno uint32) []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(uint32(i)*pgno + pgno) // compressible, distinct per page
	}
	copy(b, "SQLite format 3\x00")
	return b
}

type goldenCase struct {
	file  string
	hdr   Header
	pgnos []uint32
}

func goldenCases() []goldenCase {
	snapSum := Checksum(0).AddPage(1, goldenPage(1)).AddPage(2, goldenPage(2)).
		AddPage(3, goldenPage(3)).AddPage(4, goldenPage(4))
	return []goldenCase{
		{
			file: "segment-lz4-512.seg",
			hdr: Header{
				Kind: KindSegment, Compression: CompressionLZ4, PageSize: 512,
				Generation: "a1b2c3d4e5f60718", MinTXID: 5, MaxTXID: 6, DBSize: 9,
				FirstCommit: 1_750_000_000_000_000_000, LastCommit: 1_750_000_000_250_000_000,
				ChecksumBefore: 0x0123456789abcdef, ChecksumAfter: 0xfedcba9876543210,
				PageCount: 3,
			},
			pgnos: []uint32{1, 4, 9},
		},
		{
			file: "snapshot-none-512.snap",
			hdr: Header{
				Kind: KindSnapshot, Compression: CompressionNone, PageSize: 512,
				Generation: "a1b2c3d4e5f60718", MinTXID: 4, MaxTXID: 4, DBSize: 4,
				FirstCommit: 1_749_999_999_000_000_000, LastCommit: 1_749_999_999_000_000_000,
				ChecksumBefore: snapSum, ChecksumAfter: snapSum,
				PageCount: 4,
			},
			pgnos: []uint32{1, 2, 3, 4},
		},
		{
			file: "segment-zstd-512.seg",
			hdr: Header{
				Kind: KindSegment, Compression: CompressionZstd, PageSize: 512,
				Generation: "G", MinTXID: 1, MaxTXID: 1, DBSize: 2,
				PageCount: 2,
			},
			pgnos: []uint32{1, 2},
		},
	}
}

func (gc goldenCase) pages() []page {
	ps := make([]page, len(gc.pgnos))
	for i, p := range gc.pgnos {
		ps[i] = page{p, goldenPage(p)}
	}
	return ps
}

func TestGolden(t *testing.T) {
	for _, gc := range goldenCases() {
		t.Run(gc.file, func(t *testing.T) {
			path := filepath.Join("testdata", gc.file)
			encoded := encode(t, gc.hdr, WriterOptions{}, gc.pages())
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, encoded, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}

			// Decoding must keep working for every object ever written.
			hdr, pages, err := decode(golden)
			if err != nil {
				t.Fatalf("decoding golden file: %v", err)
			}
			if hdr != gc.hdr {
				t.Fatalf("golden header:\n got %+v\nwant %+v", hdr, gc.hdr)
			}
			equalPages(t, pages, gc.pages())

			// Encoding must not change by accident. If only a compression
			// library upgrade changed its output, the decode check above
			// still passes and the new bytes may be accepted with -update.
			if !bytes.Equal(encoded, golden) {
				t.Fatalf("encoder output (%d bytes) differs from %s (%d bytes): the format changed; "+
					"if on purpose, bump Version, update doc.go and run with -update", len(encoded), path, len(golden))
			}
		})
	}
}

// TestGoldenLayout pins a few offsets of the spec in doc.go against the
// golden snapshot, which is uncompressed and so has a layout that can be
// computed by hand.
func TestGoldenLayout(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "snapshot-none-512.snap"))
	if err != nil {
		t.Fatal(err)
	}
	const raw = 4 * (4 + 512)
	if want := HeaderSize + blockHeaderSize + raw + TrailerSize; len(b) != want {
		t.Fatalf("size %d, want %d", len(b), want)
	}
	checks := []struct {
		off  int
		want []byte
	}{
		{0, []byte("\x89RPLSEG\n")},
		{8, []byte{0, 1, 2, 0, 0, 16}},                              // version, kind, compression, encryption, gen len
		{16, []byte{0, 0, 2, 0, 0, 0, 0, 4, 0, 0, 0, 4}},            // page size, db size, page count
		{HeaderSize, []byte{0, 0, 0x08, 0x10, 0x80, 0, 0x08, 0x10}}, // raw 2064, raw flag | 2064
		{HeaderSize + blockHeaderSize, []byte{0, 0, 0, 1, 'S', 'Q'}},
		{len(b) - TrailerSize, make([]byte, blockHeaderSize)},
		{len(b) - 8, []byte("\x89RPLEND\n")},
	}
	for _, c := range checks {
		if got := b[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("offset %d: % x, want % x", c.off, got, c.want)
		}
	}
}
