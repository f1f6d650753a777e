package retention

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// CompactOptions tune Compact.
type CompactOptions struct {
	// MinRun is the fewest consecutive segments merged at once; zero
	// means 10.
	MinRun int
	// MaxRun caps the inputs of one merge (each is a temporary file);
	// zero means 256.
	MaxRun int
	// MinAge: only segments whose last commit is at least this old are
	// merged, so that recent history keeps its fine-grained restore
	// points for a while.
	MinAge time.Duration
	// Now is the current time; zero means time.Now().
	Now time.Time
	// TempDir holds the downloaded inputs and the merged output; empty
	// means os.TempDir().
	TempDir string
	// Compression of the merged object; zero means that of the first
	// input.
	Compression segment.Compression
	// Copies, when set, holds local copies of uploaded segments: merged
	// from there instead of downloaded (see Copies).
	Copies *Copies

	headers *headers
}

func (o *CompactOptions) defaults() {
	if o.MinRun <= 0 {
		o.MinRun = 10
	}
	if o.MaxRun <= 0 {
		o.MaxRun = 256
	}
	if o.MaxRun < o.MinRun {
		o.MaxRun = o.MinRun
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.headers == nil {
		o.headers = &headers{}
	}
	if o.headers.copies == nil {
		o.headers.copies = o.Copies
	}
}

// Compact merges runs of at least MinRun consecutive segments of level
// fromLevel in generation gen, each older than MinAge, into one segment of
// level fromLevel+1 spanning the run, and deletes the inputs (in one
// request) once the merged objects are stored and their headers read back.
//
// A run never spans a snapshot (a restore starting from a snapshot at
// txid X needs a segment starting at X+1), and a run is left alone when
// another segment starts strictly inside it (it would lose the position
// it continues from). Restores to the run's ends, and to anything outside
// it, are unchanged; restore points strictly inside a merged run are gone.
func Compact(ctx context.Context, r *replica.Replica, gen string, fromLevel int, opts CompactOptions) (Report, error) {
	opts.defaults()
	objs, err := r.Objects(ctx, gen)
	if err != nil {
		return Report{}, err
	}
	rep, _, err := compact(ctx, r, objs, fromLevel, opts)
	return rep, deleteObjects(ctx, r, opts.headers, &rep, err)
}

// deleteObjects deletes rep.Deleted from r in one request, even when err
// (the error of the pass that filled rep) is set: what was merged before
// the error is stored, so its inputs may go. Objects it could not delete
// are taken out of rep.Deleted.
func deleteObjects(ctx context.Context, r *replica.Replica, hc *headers, rep *Report, err error) error {
	if len(rep.Deleted) == 0 {
		return err
	}
	if derr := r.Delete(ctx, rep.Deleted...); derr != nil {
		rep.Deleted = nil
		return errors.Join(err, fmt.Errorf("delete merged and expired objects from %s: %w", r.Name, derr))
	}
	hc.forget(rep.Deleted)
	hc.copies.Forget(rep.Deleted...)
	return err
}

// compact is Compact over objs, a listing of one generation, without the
// deletion: rep.Deleted is what the caller must delete, and rest is objs
// as it will be then (merged inputs out, merged objects in).
func compact(ctx context.Context, r *replica.Replica, objs []replica.Object, fromLevel int, opts CompactOptions) (rep Report, rest []replica.Object, err error) {
	if fromLevel < 0 || fromLevel+1 > segment.MaxLevel {
		return rep, nil, fmt.Errorf("cannot compact level %d (levels are 0..%d)", fromLevel, segment.MaxLevel)
	}
	gone := map[string]bool{}
	defer func() {
		for _, o := range objs {
			if !gone[o.Key] {
				rest = append(rest, o)
			}
		}
		rest = append(rest, rep.Merged...)
	}()
	for _, run := range runs(objs, fromLevel) {
		run, err := oldPrefix(ctx, r, opts, run)
		if err != nil {
			return rep, nil, err
		}
		for len(run) >= opts.MinRun {
			n := min(len(run), opts.MaxRun)
			chunk := run[:n]
			run = run[n:]
			if !safe(objs, chunk) {
				continue
			}
			merged, err := mergeRun(ctx, r, opts, chunk, fromLevel+1, &rep)
			if err != nil {
				return rep, nil, err
			}
			rep.Merged = append(rep.Merged, merged)
			rep.Deleted = append(rep.Deleted, chunk...)
			for _, o := range chunk {
				gone[o.Key] = true
			}
		}
	}
	return rep, nil, nil
}

// runs splits the segments of level into maximal runs of consecutive
// txids, cutting wherever a snapshot sits at a boundary.
func runs(objs []replica.Object, level int) [][]replica.Object {
	snaps := map[uint64]bool{}
	var segs []replica.Object
	for _, o := range objs {
		if o.Snapshot() {
			snaps[o.Min] = true
		} else if o.Level == level {
			segs = append(segs, o)
		}
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Min < segs[j].Min })
	var out [][]replica.Object
	var cur []replica.Object
	for _, s := range segs {
		if len(cur) > 0 && s.Min == cur[len(cur)-1].Max+1 && !snaps[s.Min-1] {
			cur = append(cur, s)
			continue
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur = []replica.Object{s}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// safe reports whether replacing run by one segment keeps every other
// object reachable: no other segment may start strictly inside the run.
func safe(objs []replica.Object, run []replica.Object) bool {
	a, b := run[0].Min, run[len(run)-1].Max
	in := map[string]bool{}
	for _, o := range run {
		in[o.Key] = true
	}
	for _, o := range objs {
		if !o.Snapshot() && !in[o.Key] && a < o.Min && o.Min <= b {
			return false
		}
	}
	return true
}

// oldPrefix returns the longest prefix of run whose last commit is at
// least MinAge old (commit times grow along a chain, so this is a binary
// search over headers).
func oldPrefix(ctx context.Context, r *replica.Replica, opts CompactOptions, run []replica.Object) ([]replica.Object, error) {
	if len(run) < opts.MinRun {
		return nil, nil
	}
	limit := opts.Now.Add(-opts.MinAge)
	var ferr error
	n := sort.Search(len(run), func(i int) bool {
		if ferr != nil {
			return true
		}
		h, err := opts.headers.get(ctx, r, run[i])
		if err != nil {
			ferr = err
			return true
		}
		return h.LastCommitTime().After(limit)
	})
	if ferr != nil {
		return nil, ferr
	}
	return run[:n], nil
}

// mergeRun reads run (from local copies, else downloading it), merges it
// into one segment of level, verifies the result, uploads it, reads its
// header back and keeps the result as a local copy for the next level.
func mergeRun(ctx context.Context, r *replica.Replica, opts CompactOptions, run []replica.Object, level int, rep *Report) (replica.Object, error) {
	a, b := run[0].Min, run[len(run)-1].Max
	fail := func(err error) (replica.Object, error) {
		return replica.Object{}, fmt.Errorf("compact %s/L%d/%d-%d in %s: %w", run[0].Generation, level-1, a, b, r.Name, err)
	}
	dir, err := os.MkdirTemp(opts.TempDir, "replicator-compact-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	paths := make([]string, len(run))
	for i, o := range run {
		paths[i] = filepath.Join(dir, fmt.Sprintf("%06d", i))
		if localCopy(opts.Copies, r, o, paths[i]) {
			rep.LocalInputs++
			continue
		}
		f, err := os.Create(paths[i])
		if err != nil {
			return fail(err)
		}
		_, err = r.Download(ctx, o, f) // verifies the object in full
		f.Close()
		if err != nil {
			return fail(err)
		}
		rep.DownloadedInputs++
	}
	comp := opts.Compression
	if comp == 0 {
		f, err := os.Open(paths[0])
		if err != nil {
			return fail(err)
		}
		h, err := segment.ReadHeader(f)
		f.Close()
		if err != nil {
			return fail(err)
		}
		comp = h.Compression
	}
	outPath := filepath.Join(dir, "merged")
	out, err := os.Create(outPath)
	if err != nil {
		return fail(err)
	}
	// The inputs stay as stored (Download keeps them sealed) or as they
	// were handed to the upload (local copies, plaintext at level 0); the
	// output is sealed under the replica's current key, so compaction also
	// moves old objects to a rotated key, and plaintext ones to encryption.
	h, err := segment.MergeFilesOptions(paths, out, segment.MergeOptions{
		Compression: comp, Keys: r.Keys, Key: r.Keys.Primary()})
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	// Read the merged file back in full before it replaces anything.
	f, err := os.Open(outPath)
	if err != nil {
		return fail(err)
	}
	vh, err := segment.VerifyOptions(f, r.ReaderOptions())
	f.Close()
	if err != nil {
		return fail(fmt.Errorf("merged object does not verify: %w", err))
	}
	if vh != h {
		return fail(fmt.Errorf("merged object's header differs from the one written"))
	}
	merged := replica.Object{Generation: h.Generation, Level: level, Min: h.MinTXID, Max: h.MaxTXID}
	if merged.Key, err = replica.Key(merged); err != nil {
		return fail(err)
	}
	if err := r.Upload(ctx, merged, outPath); err != nil {
		return fail(err)
	}
	// Durable: the store acknowledged the upload; make sure it lists the
	// object under its key with the header written before the inputs go.
	got, err := r.ReadHeader(ctx, merged)
	if err != nil {
		return fail(fmt.Errorf("read back merged object: %w", err))
	}
	if got != h {
		return fail(fmt.Errorf("merged object read back with a different header"))
	}
	opts.headers.put(merged, got)
	// The merged file is what was stored: the next level's merge reads it
	// from here. Best-effort, like every copy.
	_ = opts.Copies.Keep(merged, outPath)
	return merged, nil
}

// localCopy makes path the local copy of o from copies, verified in full
// and checked to be the object o names; false (and nothing at path) when
// there is no such copy, so that o is downloaded instead.
func localCopy(copies *Copies, r *replica.Replica, o replica.Object, path string) bool {
	if !copies.linkTo(o, path) {
		return false
	}
	f, err := os.Open(path)
	if err == nil {
		var h segment.Header
		h, err = segment.VerifyOptions(f, r.ReaderOptions())
		f.Close()
		if err == nil && (h.Kind != segment.KindSegment || h.Generation != o.Generation || h.MinTXID != o.Min || h.MaxTXID != o.Max) {
			err = fmt.Errorf("copy holds %d-%d of %s", h.MinTXID, h.MaxTXID, h.Generation)
		}
	}
	if err != nil {
		os.Remove(path)
		return false
	}
	return true
}
