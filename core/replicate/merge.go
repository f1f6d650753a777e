package replicate

import (
	"container/heap"
	"fmt"
	"io"
	"os"

	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// mergeSegments writes the consecutive staged segments segs (in txid
// order) as one segment to w: per page, the image of the newest segment
// that holds it, pages past the final database size dropped. It streams a
// k-way merge, so memory holds one page per input whatever their size; it
// reads the inputs twice, once to count the pages the header declares.
func mergeSegments(segs []localstate.StagedSegment, w io.Writer, comp segment.Compression) (segment.Header, error) {
	var hdrs []segment.Header
	count := uint32(0)
	first := true
	err := walkMerged(segs, func(hs []segment.Header, pgno uint32, page []byte) error {
		if first {
			hdrs, first = hs, false
		}
		if pgno <= hs[len(hs)-1].DBSize {
			count++
		}
		return nil
	})
	if err != nil {
		return segment.Header{}, err
	}
	if hdrs == nil {
		if hdrs, err = readHeaders(segs); err != nil {
			return segment.Header{}, err
		}
	}
	a, z := hdrs[0], hdrs[len(hdrs)-1]
	h := segment.Header{
		Kind: segment.KindSegment, Compression: comp, PageSize: a.PageSize, Generation: a.Generation,
		MinTXID: a.MinTXID, MaxTXID: z.MaxTXID, DBSize: z.DBSize,
		FirstCommit: a.FirstCommit, LastCommit: z.LastCommit,
		ChecksumBefore: a.ChecksumBefore, ChecksumAfter: z.ChecksumAfter, PageCount: count,
	}
	for i := 1; i < len(hdrs); i++ {
		if hdrs[i].MinTXID != hdrs[i-1].MaxTXID+1 || hdrs[i].ChecksumBefore != hdrs[i-1].ChecksumAfter {
			return segment.Header{}, fmt.Errorf("staged segments %d-%d and %d-%d do not follow each other",
				hdrs[i-1].MinTXID, hdrs[i-1].MaxTXID, hdrs[i].MinTXID, hdrs[i].MaxTXID)
		}
	}
	sw, err := segment.NewWriter(w, h, segment.WriterOptions{})
	if err != nil {
		return segment.Header{}, err
	}
	err = walkMerged(segs, func(_ []segment.Header, pgno uint32, page []byte) error {
		if pgno > h.DBSize {
			return nil
		}
		return sw.WritePage(pgno, page)
	})
	if err != nil {
		return segment.Header{}, err
	}
	return h, sw.Close()
}

func readHeaders(segs []localstate.StagedSegment) ([]segment.Header, error) {
	var hs []segment.Header
	for _, s := range segs {
		f, err := os.Open(s.Path)
		if err != nil {
			return nil, err
		}
		h, err := segment.ReadHeader(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("staged segment %s: %w", s.Path, err)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

type cursor struct {
	idx  int // input order: a higher index is newer
	r    *segment.Reader
	pgno uint32
	page []byte
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if h[i].pgno != h[j].pgno {
		return h[i].pgno < h[j].pgno
	}
	return h[i].idx > h[j].idx
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// walkMerged calls fn once per distinct page number, ascending, with the
// newest image of that page.
func walkMerged(segs []localstate.StagedSegment, fn func(hdrs []segment.Header, pgno uint32, page []byte) error) error {
	var hdrs []segment.Header
	var h cursorHeap
	for i, s := range segs {
		f, err := os.Open(s.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		r, err := segment.NewReader(f)
		if err != nil {
			return fmt.Errorf("staged segment %s: %w", s.Path, err)
		}
		hdrs = append(hdrs, r.Header())
		c := &cursor{idx: i, r: r}
		if ok, err := c.next(); err != nil {
			return fmt.Errorf("staged segment %s: %w", s.Path, err)
		} else if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		top := h[0]
		pgno := top.pgno
		if err := fn(hdrs, pgno, top.page); err != nil {
			return err
		}
		// Advance every cursor at this page number.
		for h.Len() > 0 && h[0].pgno == pgno {
			c := h[0]
			ok, err := c.next()
			if err != nil {
				return err
			}
			if ok {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
		}
	}
	return nil
}

func (c *cursor) next() (bool, error) {
	pgno, page, err := c.r.Next()
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.pgno, c.page = pgno, page
	return true, nil
}
