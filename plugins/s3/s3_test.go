package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// The test binary doubles as the s3 plugin: plugintest.Launch re-executes
// it, and then it serves Open instead of running tests.
func TestMain(m *testing.M) {
	plugintest.ServeIfChild("s3", Open)
	os.Exit(m.Run())
}

// serverSettings returns the settings of the test server started by
// scripts/test-servers.sh, with a fresh path so that each store starts
// empty. Without a server it skips the test, except in CI, where a missing
// server must fail rather than pass silently.
func serverSettings(t testing.TB) map[string]string {
	t.Helper()
	for _, v := range []string{"TEST_S3_ENDPOINT", "TEST_S3_BUCKET", "TEST_S3_ACCESS_KEY", "TEST_S3_SECRET_KEY"} {
		if os.Getenv(v) != "" {
			continue
		}
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatalf("%s is not set, and CI is: start the test servers (scripts/test-servers.sh run -- go test ./...)", v)
		}
		t.Skipf("%s is not set: run scripts/test-servers.sh run -- go test ./plugins/s3/ to test against a real S3 server", v)
	}
	s := map[string]string{
		"endpoint":          os.Getenv("TEST_S3_ENDPOINT"),
		"bucket":            os.Getenv("TEST_S3_BUCKET"),
		"access-key-id":     os.Getenv("TEST_S3_ACCESS_KEY"),
		"secret-access-key": os.Getenv("TEST_S3_SECRET_KEY"),
		"path":              freshPath(),
	}
	if r := os.Getenv("TEST_S3_REGION"); r != "" {
		s["region"] = r
	}
	return s
}

// freshPath is a key prefix no other test uses.
func freshPath() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "replicator-s3-test/" + hex.EncodeToString(b[:])
}

// with returns a copy of settings with the changes applied; an empty value
// removes the setting.
func with(settings map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(settings)+len(kv)/2)
	for k, v := range settings {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

// openDirect opens a store in this process, for tests that need to look
// behind the plugin (at multipart uploads in progress, say). It removes
// what the test left under the store's path afterwards.
func openDirect(t *testing.T, settings map[string]string) *Store {
	t.Helper()
	st, err := Open(context.Background(), settings)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s := st.(*Store)
	t.Cleanup(func() {
		cleanup(t, s)
		s.Close()
	})
	return s
}

// cleanupPath removes what a test left under the path of settings.
func cleanupPath(t *testing.T, settings map[string]string) {
	st, err := Open(context.Background(), settings)
	if err != nil {
		t.Logf("clean up %s: %v", settings["path"], err)
		return
	}
	cleanup(t, st.(*Store))
	st.Close()
}

// cleanup deletes every object and aborts every multipart upload under the
// store's path.
func cleanup(t *testing.T, s *Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	err := s.List(ctx, "", "", func(info sdk.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err == nil {
		err = s.Delete(ctx, keys...)
	}
	if err != nil {
		t.Logf("clean up %s: %v", s.opt.prefix, err)
	}
	for _, u := range uploads(t, s) {
		_, _ = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.opt.bucket), Key: u[0], UploadId: u[1]})
	}
}

// uploads lists the multipart uploads in progress under the store's path,
// as (key, upload id) pairs.
func uploads(t *testing.T, s *Store) [][2]*string {
	t.Helper()
	out, err := s.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{
		Bucket: aws.String(s.opt.bucket), Prefix: aws.String(s.opt.prefix),
	})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var ids [][2]*string
	for _, u := range out.Uploads {
		ids = append(ids, [2]*string{u.Key, u.UploadId})
	}
	return ids
}

// TestConformance runs the conformance suite against versitygw through
// the plugin process, as the replicator uses the backend: one plugin
// process, one store per conformance test, each with a fresh path under
// one root that is removed at the end.
func TestConformance(t *testing.T) {
	base := serverSettings(t)
	t.Cleanup(func() { cleanupPath(t, base) })
	p := plugintest.Launch(t, "s3")
	n := 0
	var mu sync.Mutex
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(ctx context.Context, t *testing.T) (sdk.Storage, error) {
		mu.Lock()
		n++
		path := fmt.Sprintf("%s/%d", base["path"], n)
		mu.Unlock()
		return p.Open(ctx, with(base, "path", path))
	}))
}

// TestConformanceNoConditionalWrites checks that with conditional-writes
// off the store declares neither condition and refuses both.
func TestConformanceNoConditionalWrites(t *testing.T) {
	base := with(serverSettings(t), "conditional-writes", "false")
	st := plugintest.Open(t, "s3", base)
	if caps := st.Capabilities(); caps.IfAbsent || caps.IfMatch {
		t.Fatalf("Capabilities() = %+v with conditional-writes false; want neither IfAbsent nor IfMatch", caps)
	}
	for _, opts := range []sdk.PutOptions{{IfAbsent: true}, {IfMatch: "abc"}} {
		_, err := st.Put(t.Context(), "k", strings.NewReader("x"), opts)
		if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), "conditional-writes") {
			t.Errorf("Put(%+v) with conditional-writes false: %v (code %v); want InvalidArgument naming conditional-writes", opts, err, sdk.CodeOf(err))
		}
	}
}

// TestListSkipsForeignNames: objects under the path whose names no key
// can have, such as the "dir/" markers web consoles create, are not
// listed (nothing could Get them).
func TestListSkipsForeignNames(t *testing.T) {
	t.Parallel()
	s := openDirect(t, serverSettings(t))
	ctx := t.Context()
	for _, name := range []string{s.opt.prefix + "dir/"} {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.opt.bucket), Key: aws.String(name), Body: strings.NewReader("")})
		if err != nil {
			t.Fatalf("PutObject(%q): %v", name, err)
		}
		t.Cleanup(func() {
			_, _ = s.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(s.opt.bucket), Key: aws.String(name)})
		})
	}
	if _, err := s.Put(ctx, "dir/obj", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.List(ctx, "", "", func(info sdk.ObjectInfo) error { keys = append(keys, info.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "dir/obj" {
		t.Errorf("List = %q; want only dir/obj", keys)
	}
}
