package azure

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// Recognisable fake secrets: valid in form, so that only the service
// could reject them, and easy to find in a message.
const (
	fakeKey = "U0VDUkVULUtFWS1ET05PVC1MRUFLLTEyMzQ1Njc4OTA=" // base64 of SECRET-KEY-DONOT-LEAK-1234567890
	fakeSig = "SECRETSIGdoNotLeak0123456789abcdef%3D"
)

func fakeSAS(expiry time.Time) string {
	return "sv=2022-11-02&ss=b&srt=co&sp=racwdl&se=" + expiry.UTC().Format(time.RFC3339) + "&spr=https&sig=" + fakeSig
}

func TestSettingsInvalid(t *testing.T) {
	valid := func(extra map[string]string, drop ...string) map[string]string {
		m := map[string]string{"account-name": "myaccount", "container": "backups", "account-key": fakeKey}
		for _, k := range drop {
			delete(m, k)
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	future := time.Now().Add(24 * time.Hour)
	for _, tc := range []struct {
		name     string
		settings map[string]string
		code     sdk.Code
		want     []string // substrings of the message
	}{
		{"Unknown", valid(map[string]string{"bucket": "x"}), sdk.InvalidArgument, []string{`unknown setting "bucket"`, `did you mean "container"`}},
		{"UnknownNoSuggestion", valid(map[string]string{"colour": "x"}), sdk.InvalidArgument, []string{`unknown setting "colour"`, "account-name, container"}},
		{"MissingContainer", valid(nil, "container"), sdk.InvalidArgument, []string{`"container" is required`}},
		{"BadContainer", valid(map[string]string{"container": "My_Container"}), sdk.InvalidArgument, []string{`setting "container"`, "lowercase"}},
		{"ContainerDoubleHyphen", valid(map[string]string{"container": "a--b"}), sdk.InvalidArgument, []string{`setting "container"`}},
		{"BadAccount", valid(map[string]string{"account-name": "My.Account"}), sdk.InvalidArgument, []string{`setting "account-name"`, "3-24 lowercase"}},
		{"NoCredentials", valid(nil, "account-key"), sdk.InvalidArgument, []string{"no credentials", "account-key, sas-token, connection-string"}},
		{"TwoCredentials", valid(map[string]string{"sas-token": fakeSAS(future)}), sdk.InvalidArgument, []string{"account-key and sas-token are mutually exclusive"}},
		{"ThreeCredentials", valid(map[string]string{"sas-token": fakeSAS(future), "connection-string": "AccountName=a;AccountKey=" + fakeKey}), sdk.InvalidArgument, []string{"account-key and sas-token and connection-string"}},
		{"KeyWithoutAccount", valid(nil, "account-name"), sdk.InvalidArgument, []string{`"account-name" is required with "account-key"`}},
		{"KeyNotBase64", valid(map[string]string{"account-key": "SECRET-not*base64"}), sdk.InvalidArgument, []string{`setting "account-key"`, "not a base64 account key"}},
		{"EndpointNotHTTP", valid(map[string]string{"endpoint": "ftp://example.com/x"}), sdk.InvalidArgument, []string{"setting endpoint", "https://"}},
		{"EndpointNoHost", valid(map[string]string{"endpoint": "https:///path"}), sdk.InvalidArgument, []string{"setting endpoint", "no host"}},
		{"EndpointWithSAS", valid(map[string]string{"endpoint": "https://a.blob.core.windows.net/?sv=1&sig=" + fakeSig}), sdk.InvalidArgument, []string{"setting endpoint", "sas-token"}},
		{"EndpointGarbage", valid(map[string]string{"endpoint": "http://[::1"}), sdk.InvalidArgument, []string{"setting endpoint", "not a URL"}},
		{"PathDotDot", valid(map[string]string{"path": "a/../b"}), sdk.InvalidArgument, []string{`setting "path"`}},
		{"PathEmptySegment", valid(map[string]string{"path": "a//b"}), sdk.InvalidArgument, []string{`setting "path"`}},
		{"PathTooLong", valid(map[string]string{"path": strings.Repeat("p", 300)}), sdk.InvalidArgument, []string{`setting "path"`, "under 256"}},
		{"SASWithoutSig", map[string]string{"account-name": "a1b2c", "container": "c1c", "sas-token": "sv=2022-11-02&sp=r"}, sdk.InvalidArgument, []string{"setting sas-token", "sig="}},
		{"SASWithoutAccount", map[string]string{"container": "c1c", "sas-token": fakeSAS(future)}, sdk.InvalidArgument, []string{`"account-name" or "endpoint" is required with "sas-token"`}},
		{"SASExpired", map[string]string{"account-name": "a1b2c", "container": "c1c", "sas-token": fakeSAS(time.Now().Add(-time.Hour))}, sdk.PermissionDenied, []string{"setting sas-token expired at", "create a new SAS token"}},
		{"ConnStringGarbage", map[string]string{"container": "c1c", "connection-string": "SECRETgarbage"}, sdk.InvalidArgument, []string{`setting "connection-string" is not a connection string`}},
		{"ConnStringWithEndpoint", map[string]string{"container": "c1c", "endpoint": "https://x.blob.core.windows.net", "connection-string": "AccountName=abc;AccountKey=" + fakeKey}, sdk.InvalidArgument, []string{`"connection-string" and "endpoint" conflict`}},
		{"ConnStringNoCredential", map[string]string{"container": "c1c", "connection-string": "DefaultEndpointsProtocol=https;AccountName=abc"}, sdk.InvalidArgument, []string{"neither AccountKey nor SharedAccessSignature"}},
		{"ConnStringNoAccount", map[string]string{"container": "c1c", "connection-string": "AccountKey=" + fakeKey}, sdk.InvalidArgument, []string{"needs AccountName or BlobEndpoint"}},
		{"ConnStringKeyNoName", map[string]string{"container": "c1c", "connection-string": "BlobEndpoint=https://x.example.com;AccountKey=" + fakeKey}, sdk.InvalidArgument, []string{"AccountKey but no AccountName"}},
		{"ConnStringDevStorage", map[string]string{"container": "c1c", "connection-string": "UseDevelopmentStorage=true"}, sdk.InvalidArgument, []string{"UseDevelopmentStorage is not supported"}},
		{"ConnStringOtherAccount", map[string]string{"container": "c1c", "account-name": "other", "connection-string": "AccountName=abc;AccountKey=" + fakeKey}, sdk.InvalidArgument, []string{"name different accounts"}},
		{"ConnStringBadKey", map[string]string{"container": "c1c", "connection-string": "AccountName=abc;AccountKey=SECRET*bad"}, sdk.InvalidArgument, []string{"AccountKey is not a base64 account key"}},
		{"ConnStringBadEndpoint", map[string]string{"container": "c1c", "connection-string": "BlobEndpoint=ftp://x;SharedAccessSignature=" + fakeSAS(future)}, sdk.InvalidArgument, []string{"setting connection-string (BlobEndpoint)", "https://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSettings(tc.settings)
			if err == nil {
				t.Fatalf("parseSettings(%v) succeeded, want %v", tc.settings, tc.code)
			}
			if got := sdk.CodeOf(err); got != tc.code {
				t.Errorf("code %v, want %v (error: %v)", got, tc.code, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			assertNoSecrets(t, err.Error(), "SECRET", fakeSig, fakeKey)
		})
	}
}

func TestSettingsValid(t *testing.T) {
	future := time.Now().Add(24 * time.Hour)
	for _, tc := range []struct {
		name     string
		settings map[string]string
		endpoint string
		account  string
		prefix   string
		kind     string
	}{
		{"DefaultEndpoint", map[string]string{"account-name": "myaccount", "container": "backups", "account-key": fakeKey},
			"https://myaccount.blob.core.windows.net", "myaccount", "", setKey},
		{"EndpointAndPath", map[string]string{"account-name": "devstoreaccount1", "container": "c-1", "account-key": fakeKey,
			"endpoint": "http://127.0.0.1:10000/devstoreaccount1/", "path": "/db/prod/"},
			"http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", "db/prod", setKey},
		{"SASWithQuestionMark", map[string]string{"account-name": "myaccount", "container": "backups", "sas-token": "?" + fakeSAS(future)},
			"https://myaccount.blob.core.windows.net", "myaccount", "", setSAS},
		{"SASEndpointOnly", map[string]string{"container": "backups", "sas-token": fakeSAS(future), "endpoint": "https://acct.blob.core.chinacloudapi.cn"},
			"https://acct.blob.core.chinacloudapi.cn", "acct", "", setSAS},
		{"ConnString", map[string]string{"container": "$root", "connection-string": "DefaultEndpointsProtocol=https;AccountName=abc;AccountKey=" + fakeKey + ";EndpointSuffix=core.usgovcloudapi.net"},
			"https://abc.blob.core.usgovcloudapi.net", "abc", "", setConnString},
		{"ConnStringBlobEndpoint", map[string]string{"container": "backups", "account-name": "devstoreaccount1",
			"connection-string": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + fakeKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"},
			"http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", "", setConnString},
		{"ConnStringSAS", map[string]string{"container": "backups", "connection-string": "BlobEndpoint=https://abc.blob.core.windows.net/;SharedAccessSignature=" + fakeSAS(future)},
			"https://abc.blob.core.windows.net", "abc", "", setConnString},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseSettings(tc.settings)
			if err != nil {
				t.Fatalf("parseSettings: %v", err)
			}
			if c.endpoint != tc.endpoint || c.account != tc.account || c.prefix != tc.prefix || c.credKind != tc.kind {
				t.Errorf("got endpoint %q account %q prefix %q credentials %q; want %q %q %q %q",
					c.endpoint, c.account, c.prefix, c.credKind, tc.endpoint, tc.account, tc.prefix, tc.kind)
			}
			if (c.key == "") == (c.sas == "") {
				t.Errorf("want exactly one of key and SAS, got key set %v, SAS set %v", c.key != "", c.sas != "")
			}
			if strings.HasPrefix(c.sas, "?") {
				t.Errorf("SAS keeps its leading '?'")
			}
		})
	}
}

// TestSettingsThroughPlugin checks that a settings error crosses the
// plugin boundary with its code and message.
func TestSettingsThroughPlugin(t *testing.T) {
	p := plugintest.Launch(t, pluginName)
	_, err := p.Open(context.Background(), map[string]string{"account-name": "myaccount", "account-key": fakeKey, "containr": "x"})
	if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), `unknown setting "containr"`) {
		t.Fatalf("Open with a misspelt setting: %v (code %v), want InvalidArgument naming it", err, sdk.CodeOf(err))
	}
	assertNoSecrets(t, err.Error(), fakeKey)
}

func assertNoSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("secret %q appears in: %s", s, text)
		}
	}
}

// TestBlobNameRules checks the mapping of keys to blob names and the
// service's naming limits, refused before any request.
func TestBlobNameRules(t *testing.T) {
	s := &Store{cfg: &config{prefix: "db/prod"}}
	if name, err := s.blobName("a/b c"); err != nil || name != "db/prod/a/b c" {
		t.Errorf("blobName(%q) = %q, %v; want %q", "a/b c", name, err, "db/prod/a/b c")
	}
	if key, ok := s.keyOf("db/prod/a/b c"); !ok || key != "a/b c" {
		t.Errorf("keyOf = %q, %v", key, ok)
	}
	if _, ok := s.keyOf("db/production"); ok {
		t.Errorf("keyOf accepted a name outside the path")
	}
	for _, tc := range []struct{ name, key, want string }{
		{"Control", "a\x01b", "control characters"},
		{"C1Control", "a\u0085b", "control characters"},
		{"TooLong", strings.Repeat("k", 1020), "1028 characters, over Azure's limit of 1024"},
		{"TooDeep", strings.Repeat("a/", 253) + "b", "256 path segments, over Azure's limit of 254"},
		{"Invalid", "a//b", "empty path segment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.blobName(tc.key)
			if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("blobName: %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
}
