package conformance

import (
	"fmt"
	"slices"
	"testing"
)

// Numbers of keys in Delete/Batch: more deleted in one call than the 1000
// that S3's DeleteObjects takes, so a store must split the batch itself.
const (
	batchDeleted = 1100
	batchKept    = 100
	batchMissing = 50
)

func testDelete(t *testing.T, h Harness) {
	leaf(t, h, "One", func(e *env) {
		e.put("obj", []byte("x"))
		e.del("obj")
		e.wantAbsent("obj")
		e.wantList("", "", nil)
	})

	leaf(t, h, "Batch", func(e *env) {
		var keys []string
		for i := range batchDeleted + batchKept {
			keys = append(keys, fmt.Sprintf("batch/%02d/%04d", i%13, i))
		}
		e.putMany(keys, func(int) []byte { return []byte("x") })
		deleted, kept := keys[:batchDeleted], keys[batchDeleted:]
		batch := slices.Clone(deleted)
		for i := range batchMissing {
			batch = append(batch, fmt.Sprintf("batch/missing/%d", i))
		}
		e.del(shuffled(batch)...)
		e.wantList("", "", slices.Sorted(slices.Values(kept)))
		for _, k := range []string{deleted[0], deleted[batchDeleted/2], deleted[batchDeleted-1]} {
			e.wantAbsent(k)
		}
		for _, k := range kept[:3] {
			e.wantContent(k, []byte("x"))
		}
	})

	leaf(t, h, "Missing", func(e *env) {
		e.put("other", []byte("x"))
		e.del("missing")
		e.del("missing/a", "missing/b", "other/c")
		e.wantContent("other", []byte("x"))
	})

	leaf(t, h, "Twice", func(e *env) {
		e.put("obj", []byte("x"))
		e.del("obj")
		e.del("obj")
		e.wantAbsent("obj")
	})

	leaf(t, h, "DuplicateKeys", func(e *env) {
		e.put("obj", []byte("x"))
		e.del("obj", "obj", "missing", "missing")
		e.wantAbsent("obj")
	})

	leaf(t, h, "NoKeys", func(e *env) {
		e.put("obj", []byte("x"))
		e.del()
		e.wantContent("obj", []byte("x"))
	})

	// Delete removes exactly the keys named: not keys they prefix, as a
	// recursive directory removal would, and not their neighbours.
	leaf(t, h, "OnlyExactKey", func(e *env) {
		keys := []string{"d/a/b", "d/ab", "d/abc", "d/b"}
		e.putMany(keys, func(int) []byte { return []byte("x") })
		e.del("d/a", "d/ab", "d")
		e.wantList("", "", []string{"d/a/b", "d/abc", "d/b"})
	})

	// Once a key is deleted its path is free: a store on a file system
	// must not keep the directories the key needed.
	leaf(t, h, "FreesPath", func(e *env) {
		e.put("f/g/h", []byte("deep"))
		e.del("f/g/h")
		e.wantList("", "", nil)
		e.put("f/g", []byte("parent"))
		e.wantContent("f/g", []byte("parent"))
		e.wantList("", "", []string{"f/g"})
	})
}
