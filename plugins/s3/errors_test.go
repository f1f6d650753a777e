package s3

import (
	"bytes"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// canarySecret and canaryToken are recognisable secrets: no error or log
// line may contain them.
const (
	canarySecret = "CANARY-secret-7f3a9c1e5b"
	canaryToken  = "CANARY-token-2d8e4b6f0a"
)

// closedPort returns the address of a TCP port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestOpenErrors opens misconfigured stores through the plugin process and
// checks each error's code, and that its message says what failed, where,
// and what to check, and never holds a secret. The plugin's log, captured
// through the host, must not hold a secret either.
func TestOpenErrors(t *testing.T) {
	good := serverSettings(t)
	endpoint := good["endpoint"]
	closed := "http://" + closedPort(t)

	var logs syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	p := plugintest.Launch(t, "s3") // its host logs to the default logger set above

	tests := []struct {
		name     string
		settings map[string]string
		code     sdk.Code
		want     []string // substrings of the message
	}{
		{"MissingBucket", with(good, "bucket", "no-such-bucket-x1"), sdk.NotFound,
			[]string{`bucket "no-such-bucket-x1" does not exist`, endpoint, "check bucket and region/endpoint"}},
		{"WrongSecret", with(good, "secret-access-key", canarySecret), sdk.PermissionDenied,
			[]string{endpoint, "check access-key-id/secret-access-key", `bucket "` + good["bucket"] + `"`}},
		{"WrongKeyID", with(good, "access-key-id", "NOSUCHKEYID", "secret-access-key", canarySecret, "session-token", canaryToken), sdk.PermissionDenied,
			[]string{endpoint, "check access-key-id/secret-access-key"}},
		{"ClosedPort", with(good, "endpoint", closed, "secret-access-key", canarySecret), sdk.Unavailable,
			[]string{closed, "connection refused", "check endpoint"}},
		{"UnknownHost", with(good, "endpoint", "http://no-such-host.invalid:9000", "secret-access-key", canarySecret), sdk.Unavailable,
			[]string{"http://no-such-host.invalid:9000", "check endpoint"}},
		{"BadSetting", with(good, "part-size", "1MiB", "secret-access-key", canarySecret), sdk.InvalidArgument,
			[]string{`"part-size"`, "5MiB"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := p.Open(t.Context(), tc.settings)
			if err == nil {
				st.Close()
				t.Fatalf("Open succeeded; want a %v error", tc.code)
			}
			t.Logf("error: %v", err)
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("code %v, want %v", got, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message does not contain %q", w)
				}
			}
			for _, secret := range []string{canarySecret, canaryToken, good["secret-access-key"]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("message contains the secret %q", secret)
				}
			}
		})
	}
	p.Close() // flush the plugin's log
	for _, secret := range []string{canarySecret, canaryToken, good["secret-access-key"]} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains the secret %q:\n%s", secret, logs.String())
		}
	}
}

// TestWrongRegion signs with a region the server does not serve; the
// message must name the region. versitygw checks the region of the
// signature's scope.
func TestWrongRegion(t *testing.T) {
	t.Parallel()
	settings := with(serverSettings(t), "region", "eu-north-1")
	_, err := Open(t.Context(), settings)
	if err == nil {
		t.Skip("the test server accepts any region")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "eu-north-1") || !strings.Contains(err.Error(), "region") {
		t.Errorf("error %q does not name the region", err)
	}
}

// TestMappedCodes checks the codes of the data operations' errors.
func TestMappedCodes(t *testing.T) {
	t.Parallel()
	s := openDirect(t, serverSettings(t))
	ctx := t.Context()
	if _, err := s.Get(ctx, "missing", 0, -1); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("Get(missing): %v (code %v), want NotFound", err, sdk.CodeOf(err))
	}
	if _, err := s.Get(ctx, "missing", 5, 0); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("Get(missing, 5, 0): %v (code %v), want NotFound", err, sdk.CodeOf(err))
	}
	if _, err := s.Get(ctx, "k", -1, 1); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("Get(k, -1, 1): %v (code %v), want InvalidArgument", err, sdk.CodeOf(err))
	}
	if err := s.Delete(ctx, "ok", "../bad"); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("Delete(ok, ../bad): %v (code %v), want InvalidArgument", err, sdk.CodeOf(err))
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), sdk.PutOptions{IfAbsent: true, IfMatch: "e"}); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("Put(IfAbsent and IfMatch): %v (code %v), want InvalidArgument", err, sdk.CodeOf(err))
	}
	// A bucket removed after Open (here: another store on a missing bucket).
	gone := *s
	o := *s.opt
	o.bucket = "no-such-bucket-x2"
	gone.opt = &o
	err := gone.List(ctx, "", "", func(sdk.ObjectInfo) error { return nil })
	if sdk.CodeOf(err) != sdk.NotFound || !strings.Contains(err.Error(), "no-such-bucket-x2") {
		t.Errorf("List on a missing bucket: %v (code %v), want NotFound naming the bucket", err, sdk.CodeOf(err))
	}
	for _, keys := range [][]string{{"a"}, {"a", "b"}} {
		if err := gone.Delete(ctx, keys...); sdk.CodeOf(err) != sdk.NotFound || !strings.Contains(err.Error(), "no-such-bucket-x2") {
			t.Errorf("Delete(%q) on a missing bucket: %v (code %v), want NotFound naming the bucket", keys, err, sdk.CodeOf(err))
		}
	}
}

// TestSkipVerify puts a TLS proxy with a self-signed certificate in front
// of the test server: without skip-verify the certificate is refused with
// advice; with it the store works and a warning is logged.
func TestSkipVerify(t *testing.T) {
	settings := serverSettings(t)
	target, err := url.Parse(settings["endpoint"])
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // SigV4 signed the host the client saw
	}}
	srv := httptest.NewTLSServer(proxy)
	t.Cleanup(srv.Close) // after the clean-up of the store below
	settings["endpoint"] = srv.URL

	_, err = Open(t.Context(), settings)
	if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), "skip-verify") || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("Open of a self-signed endpoint: %v (code %v); want InvalidArgument naming the endpoint and skip-verify", err, sdk.CodeOf(err))
	}

	var logs syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	s := openDirect(t, with(settings, "skip-verify", "true"))
	if !strings.Contains(logs.String(), "skip-verify") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning logged for skip-verify; log: %s", logs.String())
	}
	if _, err := s.Put(t.Context(), "k", strings.NewReader("over TLS"), sdk.PutOptions{}); err != nil {
		t.Fatalf("Put through the TLS proxy: %v", err)
	}
}

// TestNoCredentials uses the default chain with nothing to find. IMDS is
// disabled so that the test does not wait for a metadata server.
func TestNoCredentials(t *testing.T) {
	settings := with(serverSettings(t), "access-key-id", "", "secret-access-key", "")
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := Open(t.Context(), settings)
	t.Logf("error: %v", err)
	if sdk.CodeOf(err) != sdk.PermissionDenied || !strings.Contains(err.Error(), "access-key-id") {
		t.Errorf("Open with no credentials anywhere: %v (code %v); want PermissionDenied saying how to set credentials", err, sdk.CodeOf(err))
	}
}

// TestEnvCredentials uses the default chain's environment credentials.
func TestEnvCredentials(t *testing.T) {
	settings := serverSettings(t)
	t.Setenv("AWS_ACCESS_KEY_ID", settings["access-key-id"])
	t.Setenv("AWS_SECRET_ACCESS_KEY", settings["secret-access-key"])
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s := openDirect(t, with(settings, "access-key-id", "", "secret-access-key", ""))
	if _, err := s.Put(t.Context(), "k", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
		t.Fatalf("Put with credentials from the environment: %v", err)
	}
}
