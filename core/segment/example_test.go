package segment_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/sqlitereplicator/replicator/core/segment"
)

// Example writes a two-page segment and reads it back. A real caller
// streams to an upload and from a download instead of a bytes.Buffer.
func Example() {
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, 4096) }
	old3 := page(0)
	new3, new7 := page(3), page(7)

	// The segment carries the database checksum before and after it.
	before := segment.Checksum(0x5eed) // from the previous segment
	after := before.ReplacePage(3, old3, new3).AddPage(7, new7)

	hdr := segment.Header{
		Kind:           segment.KindSegment,
		Compression:    segment.DefaultCompression,
		PageSize:       4096,
		Generation:     "0f1e2d3c4b5a6978",
		MinTXID:        10,
		MaxTXID:        12,
		DBSize:         7,
		FirstCommit:    1_750_000_000_000_000_000,
		LastCommit:     1_750_000_001_000_000_000,
		ChecksumBefore: before,
		ChecksumAfter:  after,
		PageCount:      2,
	}
	key, err := segment.SegmentKey(hdr.Generation, 0, hdr.MinTXID, hdr.MaxTXID)
	if err != nil {
		log.Fatal(err)
	}

	var obj bytes.Buffer
	w, err := segment.NewWriter(&obj, hdr, segment.WriterOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.WritePage(3, new3); err != nil {
		log.Fatal(err)
	}
	if err := w.WritePage(7, new7); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := segment.NewReader(&obj)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key)
	for {
		pgno, data, err := r.Next()
		if err == io.EOF {
			break // the whole object verified
		}
		if errors.Is(err, segment.ErrCorrupt) {
			log.Fatalf("damaged object: %v", err)
		} else if err != nil {
			log.Fatal(err) // I/O error: retry
		}
		fmt.Printf("page %d: %d bytes of %d\n", pgno, len(data), data[0])
	}
	// Output:
	// generations/0f1e2d3c4b5a6978/segments/0/000000000000000a-000000000000000c.segment
	// page 3: 4096 bytes of 3
	// page 7: 4096 bytes of 7
}
