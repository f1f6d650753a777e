package follow

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
)

// TestFollowEncrypted follows a replica whose objects are encrypted: with
// the key the follower converges on the primary; without it, or with
// another key, it stops at once with an error that names the key, and
// creates no local database.
func TestFollowEncrypted(t *testing.T) {
	key, _ := crypt.GenerateKey()
	other, _ := crypt.GenerateKey()
	ring := func(k *crypt.Key) *crypt.Keyring {
		kr, err := crypt.NewKeyring(k)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	dir, r := setup(t)
	r.Keys = ring(key)
	p := startPrimary(t, filepath.Join(dir, "primary.db"), r, 20, false)
	defer p.close()

	for _, tt := range []struct {
		name string
		keys *crypt.Keyring
		want error
	}{
		{"no key", nil, crypt.ErrKeyRequired},
		{"other key", ring(other), crypt.ErrWrongKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fr := replica.New("mem", r.Storage(), testLogger(t))
			fr.Keys = tt.keys
			out := filepath.Join(t.TempDir(), "follower.db")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := New(Config{Replica: fr, Path: out, Interval: 10 * time.Millisecond, Logger: testLogger(t)}).Run(ctx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run: %v, want %v", err, tt.want)
			}
			if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a local database was left behind: %v", err)
			}
		})
	}

	fr := replica.New("mem", r.Storage(), testLogger(t))
	fr.Keys = ring(key)
	out := filepath.Join(dir, "follower.db")
	f := startFollower(t, fr, out)
	defer f.close(t)
	workload(p, 20, time.Second)
	converge(t, p, f, out)
	if st := f.Stats(); st.Segments == 0 {
		t.Error("the follower applied no encrypted segment")
	}
}
