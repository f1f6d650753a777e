package s3

import (
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// base is a valid configuration with a recognisable secret.
var base = map[string]string{
	"bucket":            "b",
	"endpoint":          "http://127.0.0.1:9000",
	"access-key-id":     "AKIDTEST",
	"secret-access-key": canarySecret,
}

func TestSettingsInvalid(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		want     []string // substrings of the message: the setting and the fix
	}{
		{"MissingBucket", with(base, "bucket", ""), []string{`"bucket" is required`}},
		{"Unknown", with(base, "colour", "blue"), []string{`unknown setting "colour"`, "bucket, path, region"}},
		{"UnderscoreName", with(base, "access_key_id", "x"), []string{`"access_key_id"`, `did you mean "access-key-id"`}},
		{"Alias", with(base, "prefix", "x"), []string{`"prefix"`, `did you mean "path"`}},
		{"BucketURL", with(base, "bucket", "s3://b"), []string{`"bucket"`, `"endpoint"`}},
		{"BucketWithSlash", with(base, "bucket", "b/dir"), []string{`"bucket"`, `"path"`}},
		{"PathEmptySegment", with(base, "path", "a//b"), []string{`"path"`}},
		{"PathDotDot", with(base, "path", "a/../b"), []string{`"path"`}},
		{"EndpointNoScheme", with(base, "endpoint", "minio:9000"), []string{`"endpoint"`, "https://"}},
		{"EndpointFTP", with(base, "endpoint", "ftp://h"), []string{`"endpoint"`, "scheme"}},
		{"EndpointPath", with(base, "endpoint", "http://h:9000/b"), []string{`"endpoint"`, `"bucket"`}},
		{"EndpointUser", with(base, "endpoint", "http://u:pw@h:9000"), []string{`"endpoint"`, `"access-key-id"`}},
		{"EndpointQuery", with(base, "endpoint", "http://h?x=1"), []string{`"endpoint"`, "query"}},
		{"PathStyle", with(base, "force-path-style", "yes please"), []string{`"force-path-style"`, "true or false"}},
		{"KeyIDOnly", with(base, "secret-access-key", ""), []string{`"secret-access-key" is not`}},
		{"SecretOnly", with(base, "access-key-id", ""), []string{`"access-key-id" is not`}},
		{"TokenOnly", with(base, "access-key-id", "", "secret-access-key", "", "session-token", canaryToken), []string{`"session-token"`}},
		{"ProfileAndKeys", with(base, "profile", "p"), []string{`"profile"`, `"access-key-id"`}},
		{"SSE", with(base, "sse", "AES"), []string{`"sse"`, "AES256", "aws:kms"}},
		{"KMSKeyWithoutKMS", with(base, "sse-kms-key-id", "k"), []string{`"sse-kms-key-id"`, "aws:kms"}},
		{"StorageClassGlacier", with(base, "storage-class", "glacier"), []string{`"storage-class"`, "restore", "STANDARD"}},
		{"StorageClassBad", with(base, "storage-class", "fast one"), []string{`"storage-class"`, "STANDARD"}},
		{"PartSizeSmall", with(base, "part-size", "4MiB"), []string{`"part-size"`, "5MiB"}},
		{"PartSizeLarge", with(base, "part-size", "6GiB"), []string{`"part-size"`, "5GiB"}},
		{"PartSizeWord", with(base, "part-size", "big"), []string{`"part-size"`}},
		{"PartSizeUnit", with(base, "part-size", "16XB"), []string{`"part-size"`}},
		{"PartSizeOverflow", with(base, "part-size", "99999999999999999999"), []string{`"part-size"`}},
		{"ConcurrencyZero", with(base, "concurrency", "0"), []string{`"concurrency"`, "1 to 64"}},
		{"ConcurrencyHigh", with(base, "concurrency", "65"), []string{`"concurrency"`}},
		{"ConcurrencyWord", with(base, "concurrency", "many"), []string{`"concurrency"`}},
		{"ConditionalWrites", with(base, "conditional-writes", "maybe"), []string{`"conditional-writes"`, "true or false"}},
		{"SkipVerifyHTTP", with(base, "skip-verify", "true"), []string{`"skip-verify"`, "https"}},
		{"SkipVerifyBad", with(base, "skip-verify", "sure"), []string{`"skip-verify"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSettings(tc.settings)
			if err == nil {
				t.Fatalf("parseSettings(%v) succeeded; want an error", tc.settings)
			}
			if sdk.CodeOf(err) != sdk.InvalidArgument {
				t.Errorf("code %v, want InvalidArgument", sdk.CodeOf(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, secret := range []string{canarySecret, canaryToken, "pw@"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the secret %q", err, secret)
				}
			}
		})
	}
}

func TestSettingsValid(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		check    func(o *options) bool
	}{
		{"EndpointDefaults", base, func(o *options) bool {
			return o.region == "us-east-1" && o.pathStyle && o.conditional && !o.skipVerify &&
				o.partSize == 16<<20 && o.concurrency == 2 && o.prefix == "" && o.endpoint == "http://127.0.0.1:9000"
		}},
		{"AWSDefaults", with(base, "endpoint", ""), func(o *options) bool { return o.region == "" && !o.pathStyle }},
		{"EndpointSlash", with(base, "endpoint", "https://s3.example.com/"), func(o *options) bool { return o.endpoint == "https://s3.example.com" }},
		{"Path", with(base, "path", "/backups/db1/"), func(o *options) bool { return o.prefix == "backups/db1/" }},
		{"Region", with(base, "region", "auto"), func(o *options) bool { return o.region == "auto" }},
		{"VirtualHost", with(base, "force-path-style", "false"), func(o *options) bool { return !o.pathStyle }},
		{"PartSizeMiB", with(base, "part-size", "64MiB"), func(o *options) bool { return o.partSize == 64<<20 }},
		{"PartSizeM", with(base, "part-size", "8M"), func(o *options) bool { return o.partSize == 8<<20 }},
		{"PartSizeMB", with(base, "part-size", "10MB"), func(o *options) bool { return o.partSize == 10e6 }},
		{"PartSizeBytes", with(base, "part-size", "5242880"), func(o *options) bool { return o.partSize == 5<<20 }},
		{"SSE", with(base, "sse", "aws:kms", "sse-kms-key-id", "arn:k"), func(o *options) bool { return o.sse == "aws:kms" && o.kmsKeyID == "arn:k" }},
		{"SSEAES", with(base, "sse", "aes256"), func(o *options) bool { return o.sse == "AES256" }},
		{"StorageClass", with(base, "storage-class", "standard_ia"), func(o *options) bool { return o.storageClass == "STANDARD_IA" }},
		{"NoConditional", with(base, "conditional-writes", "false"), func(o *options) bool { return !o.conditional }},
		{"Concurrency", with(base, "concurrency", "8"), func(o *options) bool { return o.concurrency == 8 }},
		{"Profile", with(base, "access-key-id", "", "secret-access-key", "", "profile", "prod"), func(o *options) bool { return o.profile == "prod" }},
		{"SessionToken", with(base, "session-token", "tok"), func(o *options) bool { return o.sessionToken == "tok" }},
		{"SkipVerifyHTTPS", with(base, "endpoint", "https://h", "skip-verify", "true"), func(o *options) bool { return o.skipVerify }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseSettings(tc.settings)
			if err != nil {
				t.Fatalf("parseSettings: %v", err)
			}
			if !tc.check(o) {
				t.Errorf("parseSettings(%v) = %+v", tc.settings, *o)
			}
		})
	}
}

// TestSettingsThroughPlugin checks that a settings error reaches the host
// as InvalidArgument with its message intact.
func TestSettingsThroughPlugin(t *testing.T) {
	_, err := plugintest.Launch(t, "s3").Open(t.Context(), with(base, "colour", "blue"))
	if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), `unknown setting "colour"`) {
		t.Errorf("Open with an unknown setting through the plugin: %v (code %v); want InvalidArgument naming it", err, sdk.CodeOf(err))
	}
}

// TestNoRegion: without an endpoint, a region must come from somewhere.
func TestNoRegion(t *testing.T) {
	for _, v := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"} {
		t.Setenv(v, "")
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	_, err := Open(t.Context(), with(base, "endpoint", ""))
	if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), `"region"`) {
		t.Errorf("Open without endpoint or region: %v; want InvalidArgument naming region", err)
	}
	_, err = Open(t.Context(), with(base, "endpoint", "", "access-key-id", "", "secret-access-key", "", "profile", "nonexistent"))
	if sdk.CodeOf(err) != sdk.InvalidArgument || !strings.Contains(err.Error(), `"profile"`) {
		t.Errorf("Open with a missing profile: %v; want InvalidArgument naming profile", err)
	}
}
