package follow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/plugins/fs"
	"github.com/sqlitereplicator/replicator/plugins/s3"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// eachStore runs fn against a replica on every store the tests can reach:
// memory, a local directory, and the local S3 server when
// scripts/test-servers.sh runs one (in CI it must).
func eachStore(t *testing.T, fn func(t *testing.T, dir string, r *replica.Replica)) {
	stores := map[string]func(t *testing.T) sdk.Storage{
		"mem": func(*testing.T) sdk.Storage { return memstore.New() },
		"fs": func(t *testing.T) sdk.Storage {
			st, err := fs.Open(context.Background(), map[string]string{"path": filepath.Join(t.TempDir(), "replica")})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"s3": func(t *testing.T) sdk.Storage {
			vars := []string{"TEST_S3_ENDPOINT", "TEST_S3_BUCKET", "TEST_S3_ACCESS_KEY", "TEST_S3_SECRET_KEY"}
			for _, v := range vars {
				if os.Getenv(v) == "" {
					if os.Getenv("CI") != "" {
						t.Fatalf("%s is not set: CI must run the test servers (scripts/test-servers.sh)", v)
					}
					t.Skipf("%s is not set; run under scripts/test-servers.sh", v)
				}
			}
			var rnd [6]byte
			_, _ = rand.Read(rnd[:])
			st, err := s3.Open(context.Background(), map[string]string{
				"endpoint": os.Getenv("TEST_S3_ENDPOINT"), "bucket": os.Getenv("TEST_S3_BUCKET"), "region": os.Getenv("TEST_S3_REGION"),
				"access-key-id": os.Getenv("TEST_S3_ACCESS_KEY"), "secret-access-key": os.Getenv("TEST_S3_SECRET_KEY"),
				"path": "follow-" + hex.EncodeToString(rnd[:]),
			})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	}
	for _, name := range []string{"mem", "fs", "s3"} {
		t.Run(name, func(t *testing.T) {
			st := stores[name](t)
			t.Cleanup(func() { st.Close() })
			fn(t, t.TempDir(), replica.New(name, st, testLogger(t)))
		})
	}
}
