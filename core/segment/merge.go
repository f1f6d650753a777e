package segment

import (
	"container/heap"
	"fmt"
	"io"
	"os"

	"github.com/sqlitereplicator/replicator/core/crypt"
)

// MergeFiles writes the segment files in paths (consecutive, in txid order)
// as one segment to w: per page, the image from the newest input that holds
// it; pages past the final database size are dropped. It is how uploads
// batch staged segments and how compaction builds higher levels. A streaming
// k-way merge: memory holds one page per input whatever their size; the
// inputs are read twice, once to count the pages the header declares. The
// inputs must form a chain (consecutive txids, each starting from the
// checksum the previous one ended with), or the error wraps ErrCorrupt.
// The inputs and the output are plaintext; MergeFilesOptions handles
// encrypted ones.
func MergeFiles(paths []string, w io.Writer, comp Compression) (Header, error) {
	return MergeFilesOptions(paths, w, MergeOptions{Compression: comp})
}

// MergeOptions configures MergeFilesOptions.
type MergeOptions struct {
	// Compression of the output.
	Compression Compression
	// Keys opens encrypted inputs (plaintext inputs need none).
	Keys *crypt.Keyring
	// Key encrypts the output; nil writes it in plaintext. Compaction
	// passes the replica's current key, so merging re-encrypts inputs
	// sealed with an older key under the new one.
	Key *crypt.Key
}

// MergeFilesOptions is MergeFiles with the options of opts. The returned
// header is the output's, encryption fields included.
func MergeFilesOptions(paths []string, w io.Writer, opts MergeOptions) (Header, error) {
	comp := opts.Compression
	hdrs, err := readHeaders(paths)
	if err != nil {
		return Header{}, err
	}
	if err := checkChain(hdrs); err != nil {
		return Header{}, err
	}
	a, z := hdrs[0], hdrs[len(hdrs)-1]
	count := uint32(0)
	err = walkMerged(paths, opts.Keys, func(pgno uint32, _ []byte) error {
		if pgno <= z.DBSize {
			count++
		}
		return nil
	})
	if err != nil {
		return Header{}, err
	}
	h := Header{
		Kind: KindSegment, Compression: comp, PageSize: a.PageSize, Generation: a.Generation,
		MinTXID: a.MinTXID, MaxTXID: z.MaxTXID, DBSize: z.DBSize,
		FirstCommit: a.FirstCommit, LastCommit: z.LastCommit,
		ChecksumBefore: a.ChecksumBefore, ChecksumAfter: z.ChecksumAfter, PageCount: count,
	}
	sw, err := NewWriter(w, h, WriterOptions{Key: opts.Key})
	if err != nil {
		return Header{}, err
	}
	err = walkMerged(paths, opts.Keys, func(pgno uint32, page []byte) error {
		if pgno > h.DBSize {
			return nil
		}
		return sw.WritePage(pgno, page)
	})
	if err != nil {
		return Header{}, err
	}
	return sw.Header(), sw.Close()
}

// checkChain verifies that the headers follow each other: consecutive
// txids, each starting from the database checksum the previous one ended
// with, same generation and page size.
func checkChain(hdrs []Header) error {
	if len(hdrs) == 0 {
		return fmt.Errorf("nothing to merge")
	}
	for i := 1; i < len(hdrs); i++ {
		p, h := hdrs[i-1], hdrs[i]
		if h.Kind != KindSegment || p.Kind != KindSegment {
			return fmt.Errorf("%w: only segments can be merged", ErrCorrupt)
		}
		if h.Generation != p.Generation || h.PageSize != p.PageSize {
			return fmt.Errorf("%w: segments %d-%d and %d-%d belong to different generations or page sizes",
				ErrCorrupt, p.MinTXID, p.MaxTXID, h.MinTXID, h.MaxTXID)
		}
		if h.MinTXID != p.MaxTXID+1 {
			return fmt.Errorf("%w: segments %d-%d and %d-%d are not consecutive", ErrCorrupt, p.MinTXID, p.MaxTXID, h.MinTXID, h.MaxTXID)
		}
		if h.ChecksumBefore != p.ChecksumAfter {
			return fmt.Errorf("%w: segment %d-%d starts from database checksum %s, but segment %d-%d ends at %s",
				ErrCorrupt, h.MinTXID, h.MaxTXID, h.ChecksumBefore, p.MinTXID, p.MaxTXID, p.ChecksumAfter)
		}
	}
	return nil
}

func readHeaders(paths []string) ([]Header, error) {
	var hs []Header
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		h, err := ReadHeader(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

type cursor struct {
	idx  int // input order: a higher index is newer
	r    *Reader
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
func walkMerged(paths []string, keys *crypt.Keyring, fn func(pgno uint32, page []byte) error) error {
	var h cursorHeap
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		r, err := NewReaderOptions(f, ReaderOptions{Keys: keys})
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		c := &cursor{idx: i, r: r}
		if ok, err := c.next(); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		} else if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		top := h[0]
		pgno := top.pgno
		if err := fn(pgno, top.page); err != nil {
			return err
		}
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
