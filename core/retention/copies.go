package retention

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// DefaultCopiesMaxBytes bounds the local copies of one replica when
// OpenCopies is given no limit. At 50 transactions a second and one
// upload a second, the level-0 objects a maintenance pass merges take a
// few megabytes, and the level-1 objects waiting to be merged into level
// 2 some more; past the bound, compaction downloads what it has no
// copy of, as it would without copies.
const DefaultCopiesMaxBytes int64 = 64 << 20

// Copies keeps, in a directory of the local state, the segments uploaded
// to one replica (level 0 by the uploader, higher levels by compaction)
// exactly as they were handed to Replica.Upload, so that compaction merges
// them from local disk instead of downloading each one again: at one
// upload per second that download was about 3,300 GETs an hour, most of a
// replica's requests besides the uploads themselves.
//
// A copy is a hard link to the uploaded file (a byte copy where a link is
// impossible), so keeping one costs no write. The file is the plaintext
// the replica's object was made from: the same bytes without encryption,
// and with it the same header and pages that Replica.Upload sealed, which
// is all a merge reads (compaction's outputs are sealed before they are
// uploaded, so their copies are the stored bytes). Compaction verifies every copy in full before it
// uses it and downloads the object instead when the copy is missing,
// unreadable, or does not verify or match the object it stands for.
//
// Copies only ever go away here: once their objects were merged or
// deleted from the replica (Forget, Prune), or when the directory is
// opened (what a previous run left is not known to match the replica).
// Staged segments and their clean-up (max-local-size) are separate files,
// so clean-up never removes a file compaction is reading; compaction
// links a copy into its own temporary directory before it reads it, so a
// copy removed meanwhile is simply missing.
type Copies struct {
	dir string
	max int64

	mu    sync.Mutex
	size  int64
	files map[string]kept // by object key
}

// kept is one copy: its file (empty when only the header is kept, because
// the directory was full or the file could not be kept), its size, the
// header read from it, when it was kept, and whether its upload is still
// under way (KeepUploading).
type kept struct {
	path    string
	size    int64
	hdr     segment.Header
	at      time.Time
	pending bool
}

// OpenCopies empties (or creates) dir and returns the copies kept in it,
// holding at most maxBytes of files; maxBytes <= 0 means
// DefaultCopiesMaxBytes.
func OpenCopies(dir string, maxBytes int64) (*Copies, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultCopiesMaxBytes
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("empty the compaction copies in %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the compaction copies directory %s: %w", dir, err)
	}
	return &Copies{dir: dir, max: maxBytes, files: map[string]kept{}}, nil
}

// copiedLevels: maintenance passes merge levels 0 and 1 only (see
// Maintainer.compact), so segments of those levels are kept. A copy of a
// level-2 segment would wait for a merge that never comes, filling the
// bound until level-0 copies no longer fit.
const copiedLevels = 2

// Keep records that the file at path was uploaded as segment o.
// Snapshots and segments of levels no pass merges are ignored. It is best-effort: an error means compaction
// will download o, and is returned only to be logged.
func (c *Copies) Keep(o replica.Object, path string) error { return c.keep(o, path, false) }

// KeepUploading is Keep for a file about to be uploaded as o. Kept before
// the upload, the copy is there for a pass that lists o the moment the
// upload is done (kept after it, a pass could come in between and
// download o). Until Uploaded reports how the upload went, no pass
// prunes the copy, though no listing holds o yet.
func (c *Copies) KeepUploading(o replica.Object, path string) error { return c.keep(o, path, true) }

// Uploaded ends what KeepUploading began: the copy is kept as any other
// when the upload succeeded, and dropped when it failed.
func (c *Copies) Uploaded(o replica.Object, ok bool) {
	if c == nil {
		return
	}
	key, err := replica.Key(o)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k, found := c.files[key]
	if !found || !k.pending {
		return
	}
	if !ok {
		c.dropLocked(key)
		return
	}
	k.pending, k.at = false, time.Now()
	c.files[key] = k
}

func (c *Copies) keep(o replica.Object, path string, pending bool) error {
	if c == nil || o.Snapshot() || o.Level >= copiedLevels {
		return nil
	}
	key, err := replica.Key(o)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("keep a copy of %s: %w", key, err)
	}
	defer f.Close()
	h, err := segment.ReadHeader(f)
	if err != nil {
		return fmt.Errorf("keep a copy of %s: %w", key, err)
	}
	if h.Kind != segment.KindSegment || h.Generation != o.Generation || h.MinTXID != o.Min || h.MaxTXID != o.Max {
		return fmt.Errorf("keep a copy of %s: the file holds %v %d-%d of %s", key, h.Kind, h.MinTXID, h.MaxTXID, h.Generation)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("keep a copy of %s: %w", key, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(key)
	k := kept{size: fi.Size(), hdr: h, at: time.Now(), pending: pending}
	if c.size+k.size <= c.max {
		dst := filepath.Join(c.dir, fmt.Sprintf("%s-L%d-%016x-%016x", o.Generation, o.Level, o.Min, o.Max))
		if err = linkOrCopy(f, path, dst); err == nil {
			k.path = dst
			c.size += k.size
		}
	}
	c.files[key] = k
	return err
}

// linkOrCopy makes dst the file src (opened as f): a hard link, or a copy
// of f's bytes when the link fails (another file system).
func linkOrCopy(f *os.File, src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.NewSectionReader(f, 0, 1<<62))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// header returns the header of o's copy (whose encryption fields may
// differ from the stored object's: Replica.Upload seals on the way).
func (c *Copies) header(o replica.Object) (segment.Header, bool) {
	if c == nil {
		return segment.Header{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.files[o.Key]
	return k.hdr, ok
}

// linkTo makes dst a link to (or copy of) o's copy; false when there is
// none. dst stays readable whatever happens to the copy afterwards.
func (c *Copies) linkTo(o replica.Object, dst string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.files[o.Key]
	if !ok || k.path == "" {
		return false
	}
	f, err := os.Open(k.path)
	if err != nil {
		return false
	}
	defer f.Close()
	return linkOrCopy(f, k.path, dst) == nil
}

// Forget removes the copies of objs (deleted from the replica).
func (c *Copies) Forget(objs ...replica.Object) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range objs {
		c.dropLocked(o.Key)
	}
}

// Prune removes the copies kept before listed of objects that listing (a
// listing of the replica taken at listed, by generation) does not hold:
// merged or deleted meanwhile, or never stored under that key.
func (c *Copies) Prune(listing map[string][]replica.Object, listed time.Time) {
	if c == nil {
		return
	}
	present := map[string]bool{}
	for _, objs := range listing {
		for _, o := range objs {
			present[o.Key] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, k := range c.files {
		if !present[key] && !k.pending && k.at.Before(listed) {
			c.dropLocked(key)
		}
	}
}

// Size returns the bytes of the files kept, and how many objects have a
// copy or a header.
func (c *Copies) Size() (bytes int64, objects int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, len(c.files)
}

func (c *Copies) dropLocked(key string) {
	k, ok := c.files[key]
	if !ok {
		return
	}
	delete(c.files, key)
	if k.path != "" {
		_ = os.Remove(k.path)
		c.size -= k.size
	}
}
