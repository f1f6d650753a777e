package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

func TestMain(m *testing.M) {
	plugintest.ServeIfChild("sftp", Open)
	os.Exit(m.Run())
}

// server is the test SFTP server that scripts/test-servers.sh started.
type server struct {
	host, port, user, key, knownHosts, root string
}

// testServer returns the server from the TEST_SFTP_* variables, skipping
// the test when they are missing, except on CI, where that is a failure.
func testServer(t testing.TB) server {
	t.Helper()
	s := server{
		host: os.Getenv("TEST_SFTP_HOST"), port: os.Getenv("TEST_SFTP_PORT"), user: os.Getenv("TEST_SFTP_USER"),
		key: os.Getenv("TEST_SFTP_KEY_PATH"), knownHosts: os.Getenv("TEST_SFTP_KNOWN_HOSTS"), root: os.Getenv("TEST_SFTP_ROOT"),
	}
	if s.host == "" || s.port == "" || s.user == "" || s.key == "" || s.knownHosts == "" || s.root == "" {
		const msg = "TEST_SFTP_HOST, _PORT, _USER, _KEY_PATH, _KNOWN_HOSTS and _ROOT are not all set: run under scripts/test-servers.sh run -- go test ./plugins/sftp/"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return s
}

// settings are the settings of a store rooted at dir on the server.
func (s server) settings(dir string) map[string]string {
	return map[string]string{
		"host": s.host, "port": s.port, "user": s.user,
		"key-path": s.key, "known-hosts": s.knownHosts, "path": dir,
	}
}

var admin struct {
	sync.Mutex
	st *Store
}

// openAdmin returns an in-process store on the server's root, shared by
// the tests, for setting up and cleaning up test directories.
func (s server) openAdmin(t testing.TB) *Store {
	t.Helper()
	admin.Lock()
	defer admin.Unlock()
	if admin.st == nil {
		st, err := Open(context.Background(), s.settings(s.root))
		if err != nil {
			t.Fatalf("open the test server's root: %v", err)
		}
		admin.st = st.(*Store)
	}
	return admin.st
}

// freshDir creates an empty directory of its own for one test under the
// server's root, removed when the test ends.
func (s server) freshDir(t testing.TB) string {
	t.Helper()
	admin := s.openAdmin(t)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	dir := path.Join(s.root, "t-"+name+"-"+hex.EncodeToString(rnd[:]))
	err := admin.pool.with(context.Background(), func(ss *session) error { return ss.c.MkdirAll(dir) })
	if err != nil {
		t.Fatalf("create test directory %s: %v", dir, err)
	}
	t.Cleanup(func() {
		_ = admin.pool.with(context.Background(), func(ss *session) error { return ss.c.RemoveAll(dir) })
	})
	return dir
}

// TestConformance runs the storage conformance suite against stores opened
// in a plugin process, the way the replicator uses them.
func TestConformance(t *testing.T) {
	srv := testServer(t)
	p := plugintest.Launch(t, "sftp")
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(ctx context.Context, t *testing.T) (sdk.Storage, error) {
		settings := srv.settings(srv.freshDir(t))
		// The suite puts thousands of small objects from 16 goroutines; each
		// put waits for two fsyncs on the server, so more sessions than the
		// default 4 keep the run short. The other tests use the default.
		settings["concurrency"] = "8"
		return p.Open(ctx, settings)
	}))
}

// TestCapabilities: OpenSSH offers hardlink@openssh.com, so if-absent is
// declared; if-match never is.
func TestCapabilities(t *testing.T) {
	srv := testServer(t)
	st := plugintest.Open(t, "sftp", srv.settings(srv.freshDir(t)))
	if got, want := st.Capabilities(), (sdk.Capabilities{IfAbsent: true}); got != want {
		t.Errorf("Capabilities() = %+v, want %+v", got, want)
	}
}

// TestTempFilesNotLeft checks that neither a failed nor a successful put
// leaves a file in the directory for puts in progress, and that the
// directory is never listed.
func TestTempFilesNotLeft(t *testing.T) {
	srv := testServer(t)
	dir := srv.freshDir(t)
	st, err := Open(t.Context(), srv.settings(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	if _, err := st.Put(ctx, "ok", strings.NewReader("data"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Put(ctx, "bad", io.MultiReader(strings.NewReader("part"), errReader{}), sdk.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "reading the data") {
		t.Fatalf("Put with a failing reader: %v, want an error about reading the data", err)
	}
	if _, err := st.Put(ctx, "ok", strings.NewReader("data"), sdk.PutOptions{IfAbsent: true}); sdk.CodeOf(err) != sdk.AlreadyExists {
		t.Fatalf("Put(IfAbsent) of an existing key: %v, want AlreadyExists", err)
	}
	entries, err := os.ReadDir(path.Join(dir, tmpDir))
	if err != nil {
		t.Skipf("cannot read the server's directory locally: %v", err)
	}
	for _, e := range entries {
		t.Errorf("temporary file %s left behind", e.Name())
	}
	var keys []string
	_ = st.List(ctx, "", "", func(oi sdk.ObjectInfo) error { keys = append(keys, oi.Key); return nil })
	if len(keys) != 1 || keys[0] != "ok" {
		t.Errorf("List = %q, want [ok]", keys)
	}
	if _, err := st.Put(ctx, tmpDir+"/x", bytes.NewReader(nil), sdk.PutOptions{}); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("Put into %s: %v, want InvalidArgument", tmpDir, err)
	}
	// A prefix that climbs out of the root lists nothing.
	err = st.List(ctx, "../", "", func(oi sdk.ObjectInfo) error {
		t.Errorf("List(prefix=../) reported %q", oi.Key)
		return nil
	})
	if err != nil {
		t.Errorf("List(prefix=../): %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
