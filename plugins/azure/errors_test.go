package azure

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// launchCapturing starts the plugin process with every log record of the
// host and the plugin (debug level included) going to the returned buffer.
func launchCapturing(t *testing.T) (*host.Plugin, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	p := plugintest.Launch(t, pluginName) // the host keeps the logger it finds now
	slog.SetDefault(old)
	if _, err := p.Start(context.Background()); err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	return p, logs
}

// sasToken signs a container SAS for the test server's container.
func sasToken(t *testing.T, srv server, key string, perms sas.ContainerPermissions, expiry time.Time) (token, sig string) {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(srv.account, key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: expiry,
		ContainerName: srv.container, Permissions: perms.String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode(), q.Signature()
}

// closedEndpoint returns an endpoint on a loopback port nothing listens on.
func closedEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/devstoreaccount1"
}

var allPerms = sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}

// TestOpenErrors checks, through the plugin process, that each kind of
// bad configuration fails Open with the right code and a message naming
// what failed, where, and what to check, and that no secret reaches the
// error or the logs.
func TestOpenErrors(t *testing.T) {
	srv := testServer(t)
	p, logs := launchCapturing(t)
	badSAS, badSig := sasToken(t, srv, fakeKey, allPerms, time.Now().Add(time.Hour))
	hostOnly := strings.TrimSuffix(srv.endpoint, "/"+srv.account)
	secrets := []string{fakeKey, badSig, url.QueryEscape(badSig), srv.key, "SECRET"}
	// One good open first, so the log capture has the plugin's records.
	good, err := p.Open(context.Background(), srv.settings("errors"))
	if err != nil {
		t.Fatalf("Open with good settings: %v", err)
	}
	good.Close()

	with := func(change map[string]string, drop ...string) map[string]string {
		m := srv.settings("errors")
		for _, k := range drop {
			delete(m, k)
		}
		for k, v := range change {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		settings map[string]string
		code     sdk.Code
		want     []string
	}{
		{"MissingContainer", with(map[string]string{"container": "no-such-container"}), sdk.NotFound,
			[]string{`container "no-such-container" not found`, srv.endpoint, "create the container"}},
		{"BadKey", with(map[string]string{"account-key": fakeKey}), sdk.PermissionDenied,
			[]string{`account "` + srv.account + `"`, "check that account-key belongs to"}},
		{"BadSAS", with(map[string]string{"sas-token": badSAS}, "account-key"), sdk.PermissionDenied,
			[]string{`account "` + srv.account + `"`, "check that sas-token belongs to"}},
		{"BadConnectionString", with(map[string]string{"connection-string": "DefaultEndpointsProtocol=http;AccountName=" + srv.account +
			";AccountKey=" + fakeKey + ";BlobEndpoint=" + srv.endpoint}, "account-key", "endpoint"), sdk.PermissionDenied,
			[]string{"check that connection-string belongs to"}},
		{"ClosedPort", with(map[string]string{"endpoint": closedEndpoint(t)}), sdk.Unavailable,
			[]string{"cannot reach http://127.0.0.1:", "connection refused", "check the endpoint"}},
		{"EndpointWithoutAccount", with(map[string]string{"endpoint": hostOnly}), sdk.InvalidArgument,
			[]string{hostOnly, "blob service URL"}},
		{"UnknownHost", with(map[string]string{"endpoint": "http://no-such-host.invalid/devstoreaccount1"}), sdk.InvalidArgument,
			[]string{"no-such-host.invalid", "no such host", "check the endpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st, err := p.Open(ctx, tc.settings)
			if err == nil {
				st.Close()
				t.Fatalf("Open succeeded, want %v", tc.code)
			}
			t.Logf("error: %v", err)
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("code %v, want %v", got, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q", w)
				}
			}
			assertNoSecrets(t, err.Error(), secrets...)
		})
	}
	if logs.String() == "" {
		t.Error("captured no log output at all: the capture does not work")
	}
	if !strings.Contains(logs.String(), "azure: opened container") {
		t.Error("the plugin's log records were not captured")
	}
	assertNoSecrets(t, logs.String(), secrets...)
}

// TestSASAndConnectionString opens stores with the other two kinds of
// credentials and checks that they work, that a SAS without write
// permission fails a put with a clear PermissionDenied, and that no
// secret reaches errors or logs.
func TestSASAndConnectionString(t *testing.T) {
	srv := testServer(t)
	p, logs := launchCapturing(t)
	ctx := context.Background()
	goodSAS, goodSig := sasToken(t, srv, srv.key, allPerms, time.Now().Add(time.Hour))
	readSAS, readSig := sasToken(t, srv, srv.key, sas.ContainerPermissions{Read: true, List: true}, time.Now().Add(time.Hour))
	secrets := []string{srv.key, goodSig, url.QueryEscape(goodSig), readSig, url.QueryEscape(readSig)}

	path := freshPath(t, srv, "creds")
	for name, settings := range map[string]map[string]string{
		"SAS": {"endpoint": srv.endpoint, "account-name": srv.account, "container": srv.container, "path": path, "sas-token": "?" + goodSAS},
		"ConnectionString": {"container": srv.container, "path": path, "connection-string": "DefaultEndpointsProtocol=http;AccountName=" +
			srv.account + ";AccountKey=" + srv.key + ";BlobEndpoint=" + srv.endpoint + ";"},
		"ConnectionStringSAS": {"container": srv.container, "path": path, "connection-string": "BlobEndpoint=" + srv.endpoint + ";SharedAccessSignature=" + goodSAS},
	} {
		t.Run(name, func(t *testing.T) {
			st, err := p.Open(ctx, settings)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer st.Close()
			key := "creds/" + name
			if _, err := st.Put(ctx, key, strings.NewReader("hello"), sdk.PutOptions{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			rc, err := st.Get(ctx, key, 0, -1)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(data) != "hello" {
				t.Fatalf("Get read %q, %v", data, err)
			}
			var keys []string
			if err := st.List(ctx, "creds/", "", func(i sdk.ObjectInfo) error { keys = append(keys, i.Key); return nil }); err != nil {
				t.Fatalf("List: %v", err)
			}
			if !strings.Contains(strings.Join(keys, ","), key) {
				t.Errorf("List returned %q, not %q", keys, key)
			}
			if err := st.Delete(ctx, key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		})
	}

	t.Run("ReadOnlySAS", func(t *testing.T) {
		st, err := p.Open(ctx, map[string]string{"endpoint": srv.endpoint, "container": srv.container, "path": path, "sas-token": readSAS})
		if err != nil {
			t.Fatalf("Open with a read/list SAS: %v", err)
		}
		defer st.Close()
		_, err = st.Put(ctx, "denied", strings.NewReader("x"), sdk.PutOptions{})
		t.Logf("error: %v", err)
		if sdk.CodeOf(err) != sdk.PermissionDenied || !strings.Contains(err.Error(), "lack a permission") || !strings.Contains(err.Error(), "sas-token") {
			t.Errorf("Put with a read-only SAS: %v (code %v); want PermissionDenied naming sas-token and the permissions", err, sdk.CodeOf(err))
		}
		assertNoSecrets(t, err.Error(), secrets...)
		// A put of several blocks fails at its first staged block: the
		// same error, not the cancellation of the blocks in flight.
		_, err = st.Put(ctx, "denied", bytes.NewReader(make([]byte, 2*blockSize+1)), sdk.PutOptions{})
		if sdk.CodeOf(err) != sdk.PermissionDenied || !strings.Contains(err.Error(), "lack a permission") {
			t.Errorf("multi-block Put with a read-only SAS: %v (code %v); want PermissionDenied", err, sdk.CodeOf(err))
		}
	})
	if !strings.Contains(logs.String(), "azure: opened container") {
		t.Error("the plugin's log records were not captured")
	}
	assertNoSecrets(t, logs.String(), secrets...)
}
