package s3

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sqlitereplicator/replicator/sdk"
)

// Defaults and limits of the settings.
const (
	// defaultPartSize is where a put switches to a multipart upload and the
	// size of each part: large enough that a snapshot of a few GiB needs a
	// few hundred requests, small enough to hold (concurrency+1) of them.
	defaultPartSize = 16 << 20
	// minPartSize and maxPartSize are S3's limits for all parts but the last.
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	// maxParts is S3's limit on the parts of one multipart upload.
	maxParts = 10000
	// maxObjectSize is S3's limit on one object (5 TiB).
	maxObjectSize = 5 << 40
	// defaultConcurrency is small because every part in flight is a
	// part-size buffer in memory; replication puts are mostly small anyway.
	defaultConcurrency = 2
	maxConcurrency     = 64
	// defaultEndpointRegion is used with an explicit endpoint when no region
	// is set: S3-compatible servers mostly ignore the region, but SigV4
	// needs one, and us-east-1 is what they expect by default.
	defaultEndpointRegion = "us-east-1"
)

// settingNames are the settings Open accepts, in the order the docs list
// them.
var settingNames = []string{
	"bucket", "path", "region", "endpoint", "force-path-style",
	"access-key-id", "secret-access-key", "session-token", "profile",
	"sse", "sse-kms-key-id", "storage-class", "part-size", "concurrency",
	"skip-verify", "conditional-writes",
}

// aliases maps names users plausibly write (from other tools) to ours, so
// an unknown-setting error can suggest the right one.
var aliases = map[string]string{
	"access-key": "access-key-id", "secret-key": "secret-access-key",
	"secret-access-key-id": "secret-access-key", "token": "session-token",
	"prefix": "path", "key-prefix": "path", "path-style": "force-path-style",
	"use-path-style": "force-path-style", "kms-key-id": "sse-kms-key-id",
	"sse-kms-key": "sse-kms-key-id", "insecure-skip-verify": "skip-verify",
	"insecure": "skip-verify", "endpoint-url": "endpoint", "url": "endpoint",
	"chunk-size": "part-size", "upload-concurrency": "concurrency",
}

// options are the validated settings of a store.
type options struct {
	bucket   string
	prefix   string // "" or the path setting with a trailing "/"
	region   string // "" when the default chain is to decide
	endpoint string // "" for AWS itself
	// pathStyle puts the bucket in the URL path instead of the host name.
	pathStyle bool
	// Static credentials; all empty means the default chain.
	accessKeyID, secretAccessKey, sessionToken string
	profile                                    string
	sse, kmsKeyID, storageClass                string
	partSize                                   int64
	concurrency                                int
	skipVerify                                 bool
	conditional                                bool
}

func invalid(format string, args ...any) error {
	return sdk.Errorf(sdk.InvalidArgument, "s3: "+format, args...)
}

// parseSettings validates settings and fills in the defaults. Its errors
// name the setting and the fix, and never echo a secret's value.
func parseSettings(settings map[string]string) (*options, error) {
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if !slices.Contains(settingNames, k) {
			return nil, unknownSetting(k)
		}
	}
	o := &options{
		bucket:          strings.TrimSpace(settings["bucket"]),
		region:          strings.TrimSpace(settings["region"]),
		accessKeyID:     strings.TrimSpace(settings["access-key-id"]),
		secretAccessKey: strings.TrimSpace(settings["secret-access-key"]),
		sessionToken:    strings.TrimSpace(settings["session-token"]),
		profile:         strings.TrimSpace(settings["profile"]),
		kmsKeyID:        strings.TrimSpace(settings["sse-kms-key-id"]),
		partSize:        defaultPartSize,
		concurrency:     defaultConcurrency,
		conditional:     true,
	}
	if err := o.parseLocation(settings); err != nil {
		return nil, err
	}
	if err := o.parseCredentials(); err != nil {
		return nil, err
	}
	if err := o.parseUpload(settings); err != nil {
		return nil, err
	}
	var err error
	if o.conditional, err = parseBool(settings, "conditional-writes", true); err != nil {
		return nil, err
	}
	if o.skipVerify, err = parseBool(settings, "skip-verify", false); err != nil {
		return nil, err
	}
	if o.skipVerify && strings.HasPrefix(o.endpoint, "http://") {
		return nil, invalid("setting \"skip-verify\" has no effect on the plain-http endpoint %s: remove it, or use an https endpoint", o.endpoint)
	}
	return o, nil
}

func unknownSetting(k string) error {
	norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
	if a, ok := aliases[norm]; ok {
		norm = a
	}
	if norm != k && slices.Contains(settingNames, norm) {
		return invalid("unknown setting %q: did you mean %q?", k, norm)
	}
	return invalid("unknown setting %q; the s3 backend takes %s", k, strings.Join(settingNames, ", "))
}

// parseLocation reads bucket, path, endpoint, region and force-path-style.
func (o *options) parseLocation(settings map[string]string) error {
	switch {
	case o.bucket == "":
		return invalid("setting \"bucket\" is required: the name of an existing bucket")
	case strings.Contains(o.bucket, "://"):
		return invalid("setting \"bucket\" is %q, a URL: set bucket to the bucket's name only and the server's URL in \"endpoint\"", o.bucket)
	case strings.Contains(o.bucket, "/"):
		return invalid("setting \"bucket\" is %q: a bucket name has no \"/\"; put the key prefix in \"path\"", o.bucket)
	}
	p := strings.Trim(strings.TrimSpace(settings["path"]), "/")
	if p != "" {
		if err := sdk.ValidateKey(p); err != nil {
			return invalid("setting \"path\" is %q, not a usable key prefix (%v): use slash-separated names such as \"backups/db1\"", settings["path"], err)
		}
		o.prefix = p + "/"
	}
	if ep := strings.TrimSpace(settings["endpoint"]); ep != "" {
		norm, err := parseEndpoint(ep)
		if err != nil {
			return err
		}
		o.endpoint = norm
		if o.region == "" {
			o.region = defaultEndpointRegion
		}
	}
	var err error
	o.pathStyle, err = parseBool(settings, "force-path-style", o.endpoint != "")
	return err
}

// parseEndpoint checks that ep is the URL of an S3 server, without the
// bucket or a path that the SDK would silently mangle.
func parseEndpoint(ep string) (string, error) {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", invalid("setting \"endpoint\" is %q, not a URL: write the scheme and host, e.g. \"https://s3.us-west-004.backblazeb2.com\" or \"http://127.0.0.1:9000\"", ep)
	}
	switch {
	case u.User != nil:
		return "", invalid("setting \"endpoint\" must not contain credentials: use \"access-key-id\" and \"secret-access-key\"")
	case u.RawQuery != "" || u.Fragment != "":
		return "", invalid("setting \"endpoint\" is %q: remove the query or fragment", ep)
	case strings.Trim(u.Path, "/") != "":
		return "", invalid("setting \"endpoint\" is %q, with a path: the endpoint is only scheme://host[:port]; put the bucket in \"bucket\" and the key prefix in \"path\"", ep)
	}
	return u.Scheme + "://" + u.Host, nil
}

// parseCredentials checks that static credentials are complete and that
// they do not compete with a profile.
func (o *options) parseCredentials() error {
	switch {
	case o.accessKeyID != "" && o.secretAccessKey == "":
		return invalid("setting \"access-key-id\" is set but \"secret-access-key\" is not: set both, or neither to use the default credential chain")
	case o.accessKeyID == "" && o.secretAccessKey != "":
		return invalid("setting \"secret-access-key\" is set but \"access-key-id\" is not: set both, or neither to use the default credential chain")
	case o.sessionToken != "" && o.accessKeyID == "":
		return invalid("setting \"session-token\" needs \"access-key-id\" and \"secret-access-key\" (temporary credentials come as all three)")
	case o.profile != "" && o.accessKeyID != "":
		return invalid("settings \"profile\" and \"access-key-id\" exclude each other: use the profile's credentials or static keys, not both")
	}
	return nil
}

// parseUpload reads sse, sse-kms-key-id, storage-class, part-size and
// concurrency.
func (o *options) parseUpload(settings map[string]string) error {
	switch sse := strings.TrimSpace(settings["sse"]); strings.ToLower(sse) {
	case "":
	case "aes256":
		o.sse = "AES256"
	case "aws:kms":
		o.sse = "aws:kms"
	default:
		return invalid("setting \"sse\" is %q: use \"AES256\" (keys managed by S3) or \"aws:kms\" (with optional \"sse-kms-key-id\")", sse)
	}
	if o.kmsKeyID != "" && o.sse != "aws:kms" {
		return invalid("setting \"sse-kms-key-id\" needs \"sse: aws:kms\"")
	}
	sc := strings.ToUpper(strings.TrimSpace(settings["storage-class"]))
	for _, c := range sc {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return invalid("setting \"storage-class\" is %q: use a class name such as STANDARD or STANDARD_IA", settings["storage-class"])
		}
	}
	if sc == "GLACIER" || sc == "DEEP_ARCHIVE" {
		return invalid("setting \"storage-class\" is %s, whose objects cannot be read without a restore: replicas must stay readable; use STANDARD, STANDARD_IA, GLACIER_IR or INTELLIGENT_TIERING", sc)
	}
	o.storageClass = sc
	if v, ok := settings["part-size"]; ok {
		n, err := parseSize(v)
		if err != nil || n < minPartSize || n > maxPartSize {
			return invalid("setting \"part-size\" is %q: use a size from 5MiB to 5GiB, such as \"16MiB\" (S3's limits for a part)", v)
		}
		o.partSize = n
	}
	if v, ok := settings["concurrency"]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxConcurrency {
			return invalid("setting \"concurrency\" is %q: use a whole number from 1 to %d (parts uploaded at once; each holds part-size bytes in memory)", v, maxConcurrency)
		}
		o.concurrency = n
	}
	return nil
}

func parseBool(settings map[string]string, name string, def bool) (bool, error) {
	v, ok := settings[name]
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(v)))
	if err != nil {
		return false, invalid("setting %q is %q: use true or false", name, v)
	}
	return b, nil
}

// parseSize reads a byte count: a whole number with an optional unit, where
// K, M and G (with or without "iB") are powers of 1024 and KB, MB and GB
// are powers of 1000.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	}[strings.ToLower(strings.TrimSpace(s[i:]))]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit in %q", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
