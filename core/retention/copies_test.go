package retention_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/retention"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

// getCounter counts the GETs that reach a store: whole objects and
// ranges (header reads) apart.
type getCounter struct {
	sdk.Storage
	whole, ranged atomic.Int64
}

func (g *getCounter) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off == 0 && n < 0 {
		g.whole.Add(1)
	} else {
		g.ranged.Add(1)
	}
	return g.Storage.Get(ctx, key, off, n)
}

// cloneStore copies every object of src into a new in-memory store.
func cloneStore(t *testing.T, src sdk.Storage) sdk.Storage {
	t.Helper()
	ctx := context.Background()
	dst := memstore.New()
	var keys []string
	if err := src.List(ctx, "", "", func(oi sdk.ObjectInfo) error { keys = append(keys, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		b := getAll(t, src, k)
		if _, err := dst.Put(ctx, k, bytes.NewReader(b), sdk.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func getAll(t *testing.T, st sdk.Storage, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompactFromCopies: a compaction pass whose level-0 inputs have
// local copies downloads none of them, and one whose copies are missing
// or damaged downloads them instead; both write byte for byte the same
// merged objects, and the pass's level-1 outputs become copies too, so
// the next level merges without downloads either.
func TestCompactFromCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSource(t)
	gen := s.run(t, 40, replicate.Config{CompactionInterval: -1})
	l0 := byLevel(objects(t, s.r), 0)
	if len(l0) < 20 {
		t.Fatalf("want at least 20 level-0 segments, have %d", len(l0))
	}

	// What the uploader handed to Replica.Upload: without encryption, the
	// stored bytes.
	uploaded := t.TempDir()
	paths := map[string]string{}
	for i, o := range l0 {
		paths[o.Key] = filepath.Join(uploaded, fmt.Sprintf("%03d.segment", i))
		if err := os.WriteFile(paths[o.Key], getAll(t, s.r.Storage(), o.Key), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name string
		// spoil damages the copies after they were kept; it returns how
		// many inputs must be downloaded.
		spoil func(t *testing.T, dir string) int
	}{
		{"copies present", func(*testing.T, string) int { return 0 }},
		{"copies gone or damaged", func(t *testing.T, dir string) int {
			ents, err := os.ReadDir(dir)
			if err != nil || len(ents) != len(l0) {
				t.Fatalf("copies dir holds %d files (%v), want %d", len(ents), err, len(l0))
			}
			for i, e := range ents {
				p := filepath.Join(dir, e.Name())
				if i%2 == 0 {
					// Removed, as a clean-up running meanwhile would.
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
					continue
				}
				// Damaged: a flipped byte in the last block. The copy is
				// a link to the uploaded file, so write a new file.
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-3] ^= 0xff
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return len(l0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &getCounter{Storage: cloneStore(t, s.r.Storage())}
			r := replica.New("mem", st, quiet)
			dir := filepath.Join(t.TempDir(), "copies")
			copies, err := retention.OpenCopies(dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range l0 {
				if err := copies.Keep(o, paths[o.Key]); err != nil {
					t.Fatal(err)
				}
			}
			wantDownloads := tc.spoil(t, dir)

			rep, err := retention.Compact(ctx, r, gen, 0, retention.CompactOptions{MinRun: 4, MaxRun: 8, TempDir: t.TempDir(), Copies: copies})
			if err != nil {
				t.Fatal(err)
			}
			inputs := len(rep.Deleted)
			if len(rep.Merged) == 0 || inputs == 0 {
				t.Fatalf("nothing merged: %+v", rep)
			}
			if rep.DownloadedInputs != min(wantDownloads, inputs) || rep.LocalInputs != inputs-rep.DownloadedInputs {
				t.Errorf("inputs: %d local, %d downloaded of %d; want %d downloaded", rep.LocalInputs, rep.DownloadedInputs, inputs, min(wantDownloads, inputs))
			}
			if got := st.whole.Load(); got != int64(rep.DownloadedInputs) {
				t.Errorf("%d whole-object GETs for %d downloaded inputs", got, rep.DownloadedInputs)
			}
			// Headers: the age check reads them from the copies; only each
			// merged object's header is read back.
			if got, want := st.ranged.Load(), int64(len(rep.Merged)); wantDownloads == 0 && got != want {
				t.Errorf("%d header GETs, want %d (one read-back per merged object)", got, want)
			}

			// The same pass over the replica by downloads alone.
			ref := &getCounter{Storage: cloneStore(t, s.r.Storage())}
			rr := replica.New("mem", ref, quiet)
			want, err := retention.Compact(ctx, rr, gen, 0, retention.CompactOptions{MinRun: 4, MaxRun: 8, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Merged) != len(rep.Merged) || want.DownloadedInputs != inputs {
				t.Fatalf("reference pass merged %d objects from %d downloads; the pass with copies %d from %d inputs",
					len(want.Merged), want.DownloadedInputs, len(rep.Merged), inputs)
			}
			for i, m := range rep.Merged {
				if m != want.Merged[i] {
					t.Fatalf("merged %s, reference %s", m, want.Merged[i])
				}
				if !bytes.Equal(getAll(t, st, m.Key), getAll(t, ref, m.Key)) {
					t.Errorf("%s differs from the one merged from downloads", m)
				}
			}

			// Level 1 into 2: the outputs above were kept as copies.
			before := st.whole.Load()
			rep2, err := retention.Compact(ctx, r, gen, 1, retention.CompactOptions{MinRun: 2, TempDir: t.TempDir(), Copies: copies})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep2.Merged) == 0 {
				t.Fatal("no level-1 run merged")
			}
			if got := st.whole.Load() - before; got != 0 || rep2.DownloadedInputs != 0 {
				t.Errorf("level 1 into 2 downloaded %d inputs (%d GETs), want none", rep2.DownloadedInputs, got)
			}
			// Merged and deleted objects leave no copy behind, and level 2
			// (never merged by a pass) gets none.
			if _, n := copies.Size(); n != len(l0)-inputs+len(rep.Merged)-len(rep2.Deleted) {
				t.Errorf("%d copies left; want one per level-0 and level-1 object still stored", n)
			}
		})
	}
}

// TestCopiesKeptWhileUploading: a copy kept before its upload survives a
// pass whose listing does not hold the object yet, until the upload is
// reported; then it is pruned as any other, or dropped if the upload
// failed.
func TestCopiesKeptWhileUploading(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	s.run(t, 4, replicate.Config{CompactionInterval: -1})
	l0 := byLevel(objects(t, s.r), 0)
	if len(l0) < 2 {
		t.Fatalf("want 2 level-0 segments, have %d", len(l0))
	}
	dir := t.TempDir()
	paths := make([]string, 2)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("%d.segment", i))
		if err := os.WriteFile(paths[i], getAll(t, s.r.Storage(), l0[i].Key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copies, err := retention.OpenCopies(filepath.Join(t.TempDir(), "copies"), 0)
	if err != nil {
		t.Fatal(err)
	}
	kept := func(when string, want int) {
		t.Helper()
		if _, n := copies.Size(); n != want {
			t.Fatalf("%s: %d copies, want %d", when, n, want)
		}
	}
	none := map[string][]replica.Object{}

	if err := copies.KeepUploading(l0[0], paths[0]); err != nil {
		t.Fatal(err)
	}
	copies.Prune(none, time.Now())
	kept("a pass during the upload", 1)
	beforeUpload := time.Now()
	copies.Uploaded(l0[0], true)
	copies.Prune(none, beforeUpload)
	kept("a pass listed before the upload was done", 1)
	copies.Prune(none, time.Now())
	kept("a pass listed after the upload whose listing lacks the object", 0)

	if err := copies.KeepUploading(l0[1], paths[1]); err != nil {
		t.Fatal(err)
	}
	copies.Uploaded(l0[1], false)
	kept("a failed upload", 0)
}

// TestPassRequests: a maintenance pass over two generations lists the
// replica once (the generations, then each one's objects) whatever it
// compacts and retention drops, and deletes everything in one request.
func TestPassRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSource(t)
	s.run(t, 30, replicate.Config{CompactionInterval: -1})
	// A second generation: the state directory is gone, as after a loss.
	if err := os.RemoveAll(filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+"-replicator")); err != nil {
		t.Fatal(err)
	}
	s.run(t, 30, replicate.Config{CompactionInterval: -1})
	gens, err := s.r.Generations(ctx)
	if err != nil || len(gens) != 2 {
		t.Fatalf("generations %v (%v), want 2", gens, err)
	}
	st := storecount.New(s.r.Storage())
	m := &retention.Maintainer{R: replica.New("mem", st, quiet), Policy: retention.Policy{
		// Everything is old enough to merge; the window starts after the
		// first generation's last commit, so retention drops it.
		CompactionInterval: time.Nanosecond, MinRun: 2, Retention: time.Since(s.times[31]), TempDir: t.TempDir(),
	}}
	rep, err := m.Run(ctx, time.Now(), gens[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Merged) == 0 || len(rep.Deleted) <= rep.DownloadedInputs {
		t.Fatalf("the pass merged %d objects from %d inputs and deleted %d objects; want merges and expired objects deleted",
			len(rep.Merged), rep.DownloadedInputs, len(rep.Deleted))
	}
	if got := st.Counts()[storecount.List]; got != 3 {
		t.Errorf("%d listings, want 3 (generations, then each of 2)", got)
	}
	if got := st.Counts()[storecount.Delete]; got != 1 {
		t.Errorf("%d Delete requests, want 1", got)
	}
	// A second pass right after: nothing left to merge, headers cached.
	before := st.Counts()[storecount.Get]
	if _, err := m.Run(ctx, time.Now(), gens[1]); err != nil {
		t.Fatal(err)
	}
	if got := st.Counts()[storecount.Get] - before; got != 0 {
		t.Errorf("a second pass made %d GETs, want none (headers cached)", got)
	}
}
