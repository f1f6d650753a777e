package retention

import (
	"context"
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
}

// Compact merges runs of at least MinRun consecutive segments of level
// fromLevel in generation gen, each older than MinAge, into one segment of
// level fromLevel+1 spanning the run, and deletes the inputs once the
// merged object is stored and its header read back.
//
// A run never spans a snapshot (a restore starting from a snapshot at
// txid X needs a segment starting at X+1), and a run is left alone when
// another segment starts strictly inside it (it would lose the position
// it continues from). Restores to the run's ends, and to anything outside
// it, are unchanged; restore points strictly inside a merged run are gone.
func Compact(ctx context.Context, r *replica.Replica, gen string, fromLevel int, opts CompactOptions) (Report, error) {
	opts.defaults()
	var rep Report
	if fromLevel < 0 || fromLevel+1 > segment.MaxLevel {
		return rep, fmt.Errorf("cannot compact level %d (levels are 0..%d)", fromLevel, segment.MaxLevel)
	}
	objs, err := r.Objects(ctx, gen)
	if err != nil {
		return rep, err
	}
	for _, run := range runs(objs, fromLevel) {
		run, err := oldPrefix(ctx, r, opts, run)
		if err != nil {
			return rep, err
		}
		for len(run) >= opts.MinRun {
			n := min(len(run), opts.MaxRun)
			chunk := run[:n]
			run = run[n:]
			if !safe(objs, chunk) {
				continue
			}
			merged, err := mergeRun(ctx, r, opts, chunk, fromLevel+1)
			if err != nil {
				return rep, err
			}
			rep.Merged = append(rep.Merged, merged)
			if err := r.Delete(ctx, chunk...); err != nil {
				return rep, fmt.Errorf("delete merged inputs %d-%d from %s: %w", merged.Min, merged.Max, r.Name, err)
			}
			opts.headers.forget(chunk)
			rep.Deleted = append(rep.Deleted, chunk...)
		}
	}
	return rep, nil
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

// mergeRun downloads run, merges it into one segment of level, verifies
// the result, uploads it and reads its header back.
func mergeRun(ctx context.Context, r *replica.Replica, opts CompactOptions, run []replica.Object, level int) (replica.Object, error) {
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
		f, err := os.Create(paths[i])
		if err != nil {
			return fail(err)
		}
		_, err = r.Download(ctx, o, f) // verifies the object in full
		f.Close()
		if err != nil {
			return fail(err)
		}
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
	// The inputs stay as stored (Download keeps them sealed); the output
	// is sealed under the replica's current key, so compaction also moves
	// old objects to a rotated key, and plaintext ones to encryption.
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
	return merged, nil
}
