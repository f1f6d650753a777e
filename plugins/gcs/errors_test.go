package gcs_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sqlitereplicator/replicator/plugins/gcs"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// wantErr checks err's code and that its message contains every piece.
func wantErr(t *testing.T, err error, code sdk.Code, pieces ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", code)
	}
	if got := sdk.CodeOf(err); got != code {
		t.Errorf("got code %q, want %q; error: %v", got, code, err)
	}
	for _, p := range pieces {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not mention %q: %v", p, err)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettings checks the validation Open does before any request, so it
// needs no server. Every message names the setting and what to do.
func TestSettings(t *testing.T) {
	notJSON := writeFile(t, "key.json", "not json at all")
	userCreds := writeFile(t, "adc.json", `{"type": "authorized_user", "client_id": "x", "refresh_token": "y"}`)
	for _, tc := range []struct {
		name     string
		settings map[string]string
		pieces   []string
	}{
		{"NoBucket", map[string]string{}, []string{`"bucket" is required`}},
		{"EmptyBucket", map[string]string{"bucket": ""}, []string{`"bucket" is required`}},
		{"Unknown", map[string]string{"bucket": "b-1", "region": "eu"}, []string{`unknown setting "region"`, `"credentials-file"`}},
		{"Misspelt", map[string]string{"bucket": "b-1", "credentials_file": "/k.json"}, []string{`unknown setting "credentials_file"`}},
		{"BucketURL", map[string]string{"bucket": "gs://b-1/x"}, []string{`setting "bucket"`, "bare name"}},
		{"BucketCase", map[string]string{"bucket": "My-Bucket"}, []string{`setting "bucket"`, "lower-case"}},
		{"BucketShort", map[string]string{"bucket": "ab"}, []string{`setting "bucket"`, "3 to 63"}},
		{"BucketEdge", map[string]string{"bucket": "-abc"}, []string{`setting "bucket"`, "start and end"}},
		{"PathDotDot", map[string]string{"bucket": "b-1", "path": "a/../b"}, []string{`setting "path"`, `".."`}},
		{"PathEmptySegment", map[string]string{"bucket": "b-1", "path": "a//b"}, []string{`setting "path"`}},
		{"PathTooLong", map[string]string{"bucket": "b-1", "path": strings.Repeat("p/", 300) + "p"}, []string{`setting "path"`, "1024"}},
		{"EndpointNoScheme", map[string]string{"bucket": "b-1", "endpoint": "localhost:4443"}, []string{`setting "endpoint"`}},
		{"EndpointFTP", map[string]string{"bucket": "b-1", "endpoint": "ftp://h/"}, []string{`setting "endpoint"`, "http://"}},
		{"EndpointQuery", map[string]string{"bucket": "b-1", "endpoint": "http://h/?x=1"}, []string{`setting "endpoint"`, "query"}},
		{"EndpointNoHost", map[string]string{"bucket": "b-1", "endpoint": "http:///storage/v1/"}, []string{`setting "endpoint"`, "no host"}},
		{"CredentialsMissing", map[string]string{"bucket": "b-1", "credentials-file": "/nonexistent/key.json"}, []string{`setting "credentials-file"`, "/nonexistent/key.json"}},
		{"CredentialsNotJSON", map[string]string{"bucket": "b-1", "credentials-file": notJSON}, []string{`setting "credentials-file"`, notJSON, "not a JSON key file"}},
		{"CredentialsNotServiceAccount", map[string]string{"bucket": "b-1", "credentials-file": userCreds}, []string{`setting "credentials-file"`, `"authorized_user"`, "GOOGLE_APPLICATION_CREDENTIALS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gcs.Open(t.Context(), tc.settings)
			wantErr(t, err, sdk.InvalidArgument, append([]string{"gcs: "}, tc.pieces...)...)
		})
	}
	// The same through the plugin process: the code survives the trip.
	t.Run("ThroughPlugin", func(t *testing.T) {
		_, err := plugintest.Launch(t, "gcs").Open(t.Context(), map[string]string{"bucket": "b-1", "bogus": "1"})
		wantErr(t, err, sdk.InvalidArgument, `unknown setting "bogus"`)
	})
}

// TestMissingBucket opens a bucket the test server does not have.
func TestMissingBucket(t *testing.T) {
	endpoint, _ := server(t)
	_, err := plugintest.Launch(t, "gcs").Open(t.Context(), map[string]string{"bucket": "no-such-bucket-42", "endpoint": endpoint})
	wantErr(t, err, sdk.NotFound, `bucket "no-such-bucket-42" does not exist`, endpoint, `"bucket" setting`)
}

// TestWrongEndpoint points the store at a port nobody listens on: the
// error names the endpoint and the setting, and comes quickly.
func TestWrongEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String() + "/storage/v1/"
	l.Close()
	_, err = plugintest.Launch(t, "gcs").Open(t.Context(), map[string]string{"bucket": "b-1", "endpoint": endpoint})
	wantErr(t, err, sdk.Unavailable, endpoint, `check the "endpoint" setting`)
}

// TestEndpointForms checks that a bare server URL gets the JSON API path.
func TestEndpointForms(t *testing.T) {
	endpoint, bucket := server(t)
	bare := strings.TrimSuffix(endpoint, "storage/v1/")
	for _, e := range []string{bare, strings.TrimSuffix(bare, "/"), strings.TrimSuffix(endpoint, "/")} {
		st, err := gcs.Open(t.Context(), map[string]string{"bucket": bucket, "endpoint": e})
		if err != nil {
			t.Errorf("Open with endpoint %q: %v", e, err)
			continue
		}
		st.Close()
	}
}

// fakeGoogle is an OAuth token endpoint and a Cloud Storage API that
// denies everything: enough to see what a store does with credentials
// the server refuses, and where the secrets go.
type fakeGoogle struct {
	srv         *httptest.Server
	token       string // the access token handed out: a secret
	refuseToken bool   // answer token requests with invalid_grant
	authSeen    atomic.Value
}

func newFakeGoogle(t *testing.T) *fakeGoogle {
	f := &fakeGoogle{token: "ya29.SECRET-ACCESS-TOKEN-" + randHex(16)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/token" {
			if f.refuseToken {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
				return
			}
			fmt.Fprintf(w, `{"access_token":%q,"expires_in":3600,"token_type":"Bearer"}`, f.token)
			return
		}
		f.authSeen.Store(r.Header.Get("Authorization"))
		code := http.StatusForbidden
		if r.Header.Get("Authorization") == "" {
			code = http.StatusUnauthorized
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"The caller does not have storage.objects.list access to the bucket.","errors":[{"reason":"forbidden"}]}}`, code)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serviceAccountKey writes a key file for a fresh RSA key whose token
// endpoint is tokenURL, and returns its path and the key's secret parts.
func serviceAccountKey(t *testing.T, tokenURL string) (path, email string, secrets []string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	email = "replicator-test@example-project.iam.gserviceaccount.com"
	keyID := "SECRET-KEY-ID-" + randHex(8)
	data, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "example-project",
		"private_key_id": keyID,
		"private_key":    keyPEM,
		"client_email":   email,
		"client_id":      "1234567890",
		"token_uri":      tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The key's body, line by line: none of it may show anywhere.
	for _, line := range strings.Split(keyPEM, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line)
		}
	}
	return writeFile(t, "sa.json", string(data)), email, append(secrets, keyID)
}

// captureLogs makes slog.Default, and so the log of plugins launched
// afterwards, write into the returned buffer until the test ends.
func captureLogs(t *testing.T) *syncBuffer {
	b := &syncBuffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return b
}

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

// TestCredentials checks refused credentials: the code, a message that
// names the identity and the file, and no secret in the error or in the
// log (with the client library's own debug logging asked for, which
// would print access tokens).
func TestCredentials(t *testing.T) {
	t.Setenv("GOOGLE_SDK_GO_LOGGING_LEVEL", "debug")
	for _, tc := range []struct {
		name        string
		refuseToken bool
	}{
		{"TokenRefused", true},
		{"AccessDenied", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGoogle(t)
			g.refuseToken = tc.refuseToken
			keyFile, email, secrets := serviceAccountKey(t, g.srv.URL+"/token")
			secrets = append(secrets, g.token)
			logs := captureLogs(t)
			settings := map[string]string{"bucket": "b-1", "endpoint": g.srv.URL, "credentials-file": keyFile}
			_, err := plugintest.Launch(t, "gcs").Open(t.Context(), settings)
			wantErr(t, err, sdk.PermissionDenied, email, keyFile, "b-1")
			if !tc.refuseToken {
				if got, _ := g.authSeen.Load().(string); got == "" {
					t.Errorf("the server saw no Authorization header: the credentials were not used")
				}
			}
			// In-process too, where the error has not crossed gRPC (and
			// without the library's debug lines on the test's stderr).
			t.Setenv("GOOGLE_SDK_GO_LOGGING_LEVEL", "")
			_, inErr := gcs.Open(t.Context(), settings)
			wantErr(t, inErr, sdk.PermissionDenied, email)
			if logs.String() == "" {
				t.Error("captured no log output: the check below would prove nothing")
			}
			for _, s := range secrets {
				for what, text := range map[string]string{"error": err.Error(), "in-process error": inErr.Error(), "log": logs.String()} {
					if strings.Contains(text, s) {
						t.Errorf("the %s contains the secret %.12q...: %s", what, s, text)
					}
				}
			}
		})
	}
	t.Run("NoCredentials", func(t *testing.T) {
		g := newFakeGoogle(t)
		_, err := plugintest.Launch(t, "gcs").Open(t.Context(), map[string]string{"bucket": "b-1", "endpoint": g.srv.URL})
		wantErr(t, err, sdk.PermissionDenied, "no credentials", `"credentials-file"`)
	})
}

// TestNoDefaultCredentials: without a key file or an endpoint the store
// uses Application Default Credentials; when they cannot be found the
// error says so and how to provide them.
func TestNoDefaultCredentials(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", missing)
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	_, err := plugintest.Launch(t, "gcs").Open(t.Context(), map[string]string{"bucket": "b-1"})
	wantErr(t, err, sdk.PermissionDenied, "GOOGLE_APPLICATION_CREDENTIALS="+missing, `"credentials-file"`)
}
