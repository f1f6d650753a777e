package retention_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/retention"
)

const marker = "RETENTION-PLAINTEXT-MARKER"

func keyring(t *testing.T, keys ...*crypt.Key) *crypt.Keyring {
	t.Helper()
	kr, err := crypt.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestCompactEncrypted replicates with key A, rotates to key B (keeping A
// to read), and compacts: merged objects are sealed with B, restores give
// what they gave before, compaction without the keys fails and changes
// nothing, and no object in storage holds the marker the database holds.
func TestCompactEncrypted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _ := crypt.GenerateKey()
	b, _ := crypt.GenerateKey()
	s := newSource(t)
	if _, err := s.app.Exec("INSERT INTO t (v) VALUES (?)", marker); err != nil {
		t.Fatal(err)
	}
	s.rows++
	s.run(t, 12, replicate.Config{Keys: keyring(t, a)})
	gen := s.run(t, 12, replicate.Config{Keys: keyring(t, b, a)})

	want := restoreAt(t, s.r, restore.Target{})
	if want.Err || want.Rows != s.rows {
		t.Fatalf("restore before compaction: %+v, want %d rows", want, s.rows)
	}
	before := objects(t, s.r)

	// Without keys, compaction cannot read its inputs and leaves the
	// replica alone.
	noKeys := replica.New("mem", s.r.Storage(), quiet)
	_, err := retention.Compact(ctx, noKeys, gen, 0, retention.CompactOptions{MinRun: 2, TempDir: t.TempDir()})
	if !errors.Is(err, crypt.ErrKeyRequired) {
		t.Fatalf("compaction without keys: %v, want ErrKeyRequired", err)
	}
	if got := len(objects(t, s.r)); got != len(before) {
		t.Fatalf("failed compaction changed the replica: %d objects, was %d", got, len(before))
	}

	rep, err := retention.Compact(ctx, s.r, gen, 0, retention.CompactOptions{MinRun: 2, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Merged) == 0 {
		t.Fatal("nothing merged")
	}
	for _, m := range rep.Merged {
		h, err := s.r.ReadHeader(ctx, m)
		if err != nil || h.KeyID != b.ID() {
			t.Fatalf("merged %s: key %s, %v; want the new key %s", m, h.KeyID, err, b.ID())
		}
	}
	if got := restoreAt(t, s.r, restore.Target{}); got != want {
		t.Fatalf("restore after compaction: %+v, want %+v", got, want)
	}
	for _, o := range objects(t, s.r) {
		rc, err := s.r.Storage().Get(ctx, o.Key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(body, []byte(marker)) {
			t.Fatalf("%s holds plaintext", o.Key)
		}
	}
}
