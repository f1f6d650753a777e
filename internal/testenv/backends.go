package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlitereplicator/replicator/core/config"
)

// Backends returns a replica config for each backend whose test server is
// configured (scripts/test-servers.sh; the file backend always), each under
// a fresh path. Under CI every test server must be: a missing one fails t.
func Backends(t *testing.T) map[string]config.ReplicaConfig {
	t.Helper()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	prefix := "engine-" + hex.EncodeToString(rnd[:])
	out := map[string]config.ReplicaConfig{
		"file": {Name: "file", Type: "file", Settings: map[string]string{"path": filepath.Join(t.TempDir(), "replica")}},
	}
	need := func(vars ...string) bool {
		for _, v := range vars {
			if os.Getenv(v) == "" {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s is not set: CI must run the test servers (scripts/test-servers.sh)", v)
				}
				return false
			}
		}
		return true
	}
	if need("TEST_S3_ENDPOINT", "TEST_S3_BUCKET", "TEST_S3_ACCESS_KEY", "TEST_S3_SECRET_KEY") {
		out["s3"] = config.ReplicaConfig{Name: "s3", Type: "s3", Settings: map[string]string{
			"endpoint": os.Getenv("TEST_S3_ENDPOINT"), "bucket": os.Getenv("TEST_S3_BUCKET"), "path": prefix,
			"region": os.Getenv("TEST_S3_REGION"), "access-key-id": os.Getenv("TEST_S3_ACCESS_KEY"), "secret-access-key": os.Getenv("TEST_S3_SECRET_KEY"),
		}}
	}
	if need("TEST_GCS_ENDPOINT", "TEST_GCS_BUCKET") {
		out["gcs"] = config.ReplicaConfig{Name: "gcs", Type: "gcs", Settings: map[string]string{
			"endpoint": os.Getenv("TEST_GCS_ENDPOINT"), "bucket": os.Getenv("TEST_GCS_BUCKET"), "path": prefix,
		}}
	}
	if need("TEST_AZURE_ENDPOINT", "TEST_AZURE_ACCOUNT", "TEST_AZURE_KEY", "TEST_AZURE_CONTAINER") {
		out["abs"] = config.ReplicaConfig{Name: "abs", Type: "abs", Settings: map[string]string{
			"endpoint": os.Getenv("TEST_AZURE_ENDPOINT"), "account-name": os.Getenv("TEST_AZURE_ACCOUNT"),
			"account-key": os.Getenv("TEST_AZURE_KEY"), "container": os.Getenv("TEST_AZURE_CONTAINER"), "path": prefix,
		}}
	}
	if need("TEST_SFTP_HOST", "TEST_SFTP_PORT", "TEST_SFTP_USER", "TEST_SFTP_KEY_PATH", "TEST_SFTP_KNOWN_HOSTS", "TEST_SFTP_ROOT") {
		out["sftp"] = config.ReplicaConfig{Name: "sftp", Type: "sftp", Settings: map[string]string{
			"host": os.Getenv("TEST_SFTP_HOST"), "port": os.Getenv("TEST_SFTP_PORT"), "user": os.Getenv("TEST_SFTP_USER"),
			"key-path": os.Getenv("TEST_SFTP_KEY_PATH"), "known-hosts": os.Getenv("TEST_SFTP_KNOWN_HOSTS"),
			"path": filepath.Join(os.Getenv("TEST_SFTP_ROOT"), prefix),
		}}
		// The test server is local: make the replica directory, which the
		// sftp backend requires to exist.
		if err := os.MkdirAll(out["sftp"].Settings["path"], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
