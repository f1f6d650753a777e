package gcs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/sqlitereplicator/replicator/sdk"
)

// The settings a replica of type gcs takes. Each is documented in
// docs/backends.md; anything else is rejected, so a misspelt setting
// never silently falls back to a default.
const (
	setBucket      = "bucket"
	setPath        = "path"
	setCredentials = "credentials-file"
	setEndpoint    = "endpoint"
)

var knownSettings = []string{setBucket, setPath, setCredentials, setEndpoint}

// config is a validated set of settings.
type config struct {
	bucket string
	// prefix is the path setting with a trailing "/", or "" for the whole
	// bucket; it is prepended to every key.
	prefix string
	// endpoint is the JSON API base URL (ending in "/storage/v1/"), or ""
	// for Google Cloud Storage itself.
	endpoint string
	// credFile is the service-account key file, or "" for Application
	// Default Credentials (or no authentication with an endpoint).
	credFile string
	// credEmail is the service account's address, read from credFile to
	// name the identity in permission errors (it is not a secret).
	credEmail string
}

// parseSettings validates settings without touching the network.
func parseSettings(settings map[string]string) (*config, error) {
	var unknown []string
	for k := range settings {
		if !isKnown(k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, sdk.Errorf(sdk.InvalidArgument, "gcs: unknown setting %q (the gcs backend takes %s)", unknown[0], strings.Join(quoteAll(knownSettings), ", "))
	}
	c := &config{bucket: settings[setBucket]}
	if c.bucket == "" {
		return nil, sdk.Errorf(sdk.InvalidArgument, "gcs: setting %q is required: the name of an existing Cloud Storage bucket, e.g. bucket: my-backups", setBucket)
	}
	if err := validateBucketName(c.bucket); err != nil {
		return nil, sdk.Errorf(sdk.InvalidArgument, "gcs: setting %q: %v", setBucket, err)
	}
	if p := strings.Trim(settings[setPath], "/"); p != "" {
		if err := sdk.ValidateKey(p); err != nil {
			return nil, sdk.Errorf(sdk.InvalidArgument, "gcs: setting %q (%q) is not a usable object name prefix: %v; use slash-separated names such as backups/db1", setPath, settings[setPath], err)
		}
		if len(p) > maxNameLength/2 {
			return nil, sdk.Errorf(sdk.InvalidArgument, "gcs: setting %q is %d bytes long; keep it under %d bytes, since object names are limited to %d bytes", setPath, len(p), maxNameLength/2, maxNameLength)
		}
		c.prefix = p + "/"
	}
	if e := settings[setEndpoint]; e != "" {
		ep, err := normalizeEndpoint(e)
		if err != nil {
			return nil, sdk.Errorf(sdk.InvalidArgument, "gcs: setting %q (%q): %v", setEndpoint, e, err)
		}
		c.endpoint = ep
	}
	if f := settings[setCredentials]; f != "" {
		email, err := checkCredentialsFile(f)
		if err != nil {
			return nil, err
		}
		c.credFile, c.credEmail = f, email
	}
	return c, nil
}

func isKnown(k string) bool {
	for _, s := range knownSettings {
		if k == s {
			return true
		}
	}
	return false
}

func quoteAll(ss []string) []string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return q
}

// validateBucketName applies Cloud Storage's bucket naming rules, so a typo
// such as an upper-case letter or a gs:// prefix is reported as such rather
// than as a confusing 400 or 404 from the server.
func validateBucketName(b string) error {
	if strings.Contains(b, "://") || strings.Contains(b, "/") {
		return fmt.Errorf("%q is not a bucket name; give the bare name (put a folder in the %q setting)", b, setPath)
	}
	if len(b) < 3 || len(b) > 222 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long (222 with dots)", b)
	}
	for _, r := range b {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("bucket name %q may contain only lower-case letters, digits, '-', '_' and '.'", b)
		}
	}
	first, last := b[0], b[len(b)-1]
	if !isAlnum(first) || !isAlnum(last) {
		return fmt.Errorf("bucket name %q must start and end with a letter or digit", b)
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// normalizeEndpoint turns an endpoint setting into the JSON API base URL the
// client library wants: a bare server URL such as http://127.0.0.1:4443 gets
// the API path /storage/v1/ appended, and a path always ends in "/" (the
// library resolves request paths relative to it).
func normalizeEndpoint(e string) (string, error) {
	u, err := url.Parse(e)
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("must be an http:// or https:// URL, e.g. http://127.0.0.1:4443/storage/v1/")
	}
	if u.Host == "" {
		return "", errors.New("has no host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must not contain user information, a query or a fragment")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/storage/v1/"
	} else if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawPath = ""
	return u.String(), nil
}

// checkCredentialsFile reads a service-account key file far enough to
// report a wrong path or a wrong kind of file by setting name, and returns
// the account's e-mail address. Nothing read from the file other than its
// type and address ever appears in a message.
func checkCredentialsFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		code := sdk.InvalidArgument
		if errors.Is(err, fs.ErrPermission) {
			code = sdk.PermissionDenied
		}
		return "", sdk.Errorf(code, "gcs: setting %q: cannot read the service-account key file: %v", setCredentials, err)
	}
	var f struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		// The JSON error could quote the file's content; say only where.
		off := int64(-1)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
		return "", sdk.Errorf(sdk.InvalidArgument, "gcs: setting %q: %s is not a JSON key file (syntax error near byte %d); download a service-account key (JSON) from the Cloud console", setCredentials, path, off)
	}
	if f.Type != "service_account" {
		return "", sdk.Errorf(sdk.InvalidArgument, "gcs: setting %q: %s holds credentials of type %q, not a service-account key (\"service_account\"); for other kinds of credentials leave %q unset and use Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)", setCredentials, path, f.Type, setCredentials)
	}
	return f.ClientEmail, nil
}

// credentialSource describes, for messages, which identity the store uses.
// It never includes key material.
func (c *config) credentialSource() string {
	switch {
	case c.credFile != "" && c.credEmail != "":
		return fmt.Sprintf("service account %s from %s %s", c.credEmail, setCredentials, c.credFile)
	case c.credFile != "":
		return fmt.Sprintf("the service-account key in %s %s", setCredentials, c.credFile)
	case c.endpoint != "":
		return fmt.Sprintf("no credentials (with %q set and %q not, requests are unauthenticated; set %q if the server needs them)", setEndpoint, setCredentials, setCredentials)
	}
	if p := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); p != "" {
		return "Application Default Credentials from GOOGLE_APPLICATION_CREDENTIALS=" + p
	}
	return "Application Default Credentials (gcloud auth application-default login, or the metadata server on Google Cloud)"
}

// where names the server for messages.
func (c *config) where() string {
	if c.endpoint != "" {
		return c.endpoint
	}
	if h := os.Getenv("STORAGE_EMULATOR_HOST"); h != "" {
		return "the emulator at STORAGE_EMULATOR_HOST=" + h
	}
	return "https://storage.googleapis.com"
}
