package azure

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// The settings the backend takes; anything else is a typo and refused.
const (
	setAccount    = "account-name"
	setContainer  = "container"
	setPath       = "path"
	setKey        = "account-key"
	setSAS        = "sas-token"
	setConnString = "connection-string"
	setEndpoint   = "endpoint"
)

var knownSettings = []string{setAccount, setContainer, setPath, setKey, setSAS, setConnString, setEndpoint}

// credentialSettings are mutually exclusive: exactly one says how to sign.
var credentialSettings = []string{setKey, setSAS, setConnString}

var (
	accountNameRE   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	containerNameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9])*$`)
)

// config is the validated form of the settings.
type config struct {
	account   string // may be empty with a SAS and an explicit endpoint
	container string
	prefix    string // "" or a valid key; blob names are prefix + "/" + key
	endpoint  string // service URL, no trailing slash, no query
	credKind  string // the setting the credentials came from, for messages
	key       string // shared key (base64), when signing with one
	sas       string // SAS query string without "?", when using one
	secrets   []string
}

// containerURL is the container's URL without credentials: what messages
// name.
func (c *config) containerURL() string { return c.endpoint + "/" + c.container }

// parseSettings validates settings. Its errors are InvalidArgument (or
// PermissionDenied for an expired SAS), name the setting and the fix, and
// never repeat a secret.
func parseSettings(settings map[string]string) (*config, error) {
	for k := range settings {
		if !slices.Contains(knownSettings, k) {
			return nil, invalid("unknown setting %q%s (the azure backend takes %s)", k, suggest(k), strings.Join(knownSettings, ", "))
		}
	}
	c := &config{account: strings.TrimSpace(settings[setAccount]), container: strings.TrimSpace(settings[setContainer])}

	var creds []string
	for _, k := range credentialSettings {
		if settings[k] != "" {
			creds = append(creds, k)
		}
	}
	switch len(creds) {
	case 0:
		return nil, invalid("no credentials: set exactly one of %s (%s with %s, %s for a shared access signature, or %s copied from the portal)",
			strings.Join(credentialSettings, ", "), setKey, setAccount, setSAS, setConnString)
	case 1:
		c.credKind = creds[0]
	default:
		return nil, invalid("settings %s are mutually exclusive: keep only one way to authenticate", strings.Join(creds, " and "))
	}

	if c.container == "" {
		return nil, invalid("setting %q is required: the blob container to replicate into (it must exist)", setContainer)
	}
	if !validContainer(c.container) {
		return nil, invalid("setting %q: %q is not a valid container name: use 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit", setContainer, c.container)
	}
	if c.account != "" && !accountNameRE.MatchString(c.account) {
		return nil, invalid("setting %q: %q is not a valid storage account name: use 3-24 lowercase letters and digits", setAccount, c.account)
	}

	prefix := strings.Trim(settings[setPath], "/")
	if prefix != "" {
		if err := sdk.ValidateKey(prefix); err != nil {
			return nil, invalid("setting %q: %q is not a usable blob name prefix: %v", setPath, settings[setPath], err)
		}
		if len(prefix) > 256 {
			return nil, invalid("setting %q is %d bytes long: keep it under 256 so that keys fit in Azure's 1024-character blob names", setPath, len(prefix))
		}
	}
	c.prefix = prefix

	var err error
	switch c.credKind {
	case setKey:
		err = c.useKey(settings[setKey], settings[setEndpoint])
	case setSAS:
		err = c.useSAS(settings[setSAS], settings[setEndpoint])
	case setConnString:
		err = c.useConnectionString(settings[setConnString], settings[setEndpoint])
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *config) useKey(key, endpoint string) error {
	c.secrets = append(c.secrets, key)
	if c.account == "" {
		return invalid("setting %q is required with %q: the storage account the key belongs to", setAccount, setKey)
	}
	if err := checkKey(key); err != nil {
		return invalid("setting %q: %v: copy key1 or key2 from the storage account's \"Access keys\" page", setKey, err)
	}
	c.key = strings.TrimSpace(key)
	return c.setEndpoint(endpoint, setEndpoint)
}

func (c *config) useSAS(token, endpoint string) error {
	c.secrets = append(c.secrets, token)
	token = strings.TrimPrefix(strings.TrimSpace(token), "?")
	if err := checkSAS(token, setSAS); err != nil {
		return err
	}
	c.sas = token
	c.secrets = append(c.secrets, token)
	if c.account == "" && endpoint == "" {
		return invalid("setting %q or %q is required with %q: the storage account the token is for", setAccount, setEndpoint, setSAS)
	}
	return c.setEndpoint(endpoint, setEndpoint)
}

// useConnectionString takes the account, endpoint and one credential from
// a connection string as the Azure portal shows it.
func (c *config) useConnectionString(cs, endpoint string) error {
	c.secrets = append(c.secrets, cs)
	if endpoint != "" {
		return invalid("settings %q and %q conflict: the connection string names the endpoint (BlobEndpoint=...); remove %q", setConnString, setEndpoint, setEndpoint)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimSpace(cs), ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return invalid("setting %q is not a connection string: want Name=value pairs separated by ';' (like DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...)", setConnString)
		}
		fields[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	}
	for _, secret := range []string{"accountkey", "sharedaccesssignature"} {
		if v := fields[secret]; v != "" {
			c.secrets = append(c.secrets, v)
		}
	}
	if fields["usedevelopmentstorage"] != "" {
		return invalid("setting %q: UseDevelopmentStorage is not supported: give BlobEndpoint, AccountName and AccountKey (for Azurite: BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1)", setConnString)
	}
	name := fields["accountname"]
	switch {
	case name != "" && !accountNameRE.MatchString(name):
		return invalid("setting %q: AccountName %q is not a valid storage account name", setConnString, name)
	case name != "" && c.account != "" && name != c.account:
		return invalid("settings %q (%q) and %q (AccountName=%q) name different accounts: remove %q", setAccount, c.account, setConnString, name, setAccount)
	case name != "":
		c.account = name
	}
	ep := fields["blobendpoint"]
	if ep == "" {
		if c.account == "" {
			return invalid("setting %q needs AccountName or BlobEndpoint", setConnString)
		}
		proto, suffix := fields["defaultendpointsprotocol"], fields["endpointsuffix"]
		if proto == "" {
			proto = "https"
		}
		if suffix == "" {
			suffix = "core.windows.net"
		}
		ep = proto + "://" + c.account + ".blob." + suffix
	}
	if err := c.setEndpoint(ep, setConnString+" (BlobEndpoint)"); err != nil {
		return err
	}
	switch key, sas := fields["accountkey"], fields["sharedaccesssignature"]; {
	case key != "":
		if c.account == "" {
			return invalid("setting %q has AccountKey but no AccountName: add AccountName=...", setConnString)
		}
		if err := checkKey(key); err != nil {
			return invalid("setting %q: AccountKey %v", setConnString, err)
		}
		c.key = key
	case sas != "":
		sas = strings.TrimPrefix(sas, "?")
		if err := checkSAS(sas, setConnString+" (SharedAccessSignature)"); err != nil {
			return err
		}
		c.sas = sas
	default:
		return invalid("setting %q has neither AccountKey nor SharedAccessSignature: copy the full connection string from the storage account's \"Access keys\" page", setConnString)
	}
	return nil
}

// setEndpoint validates the service URL (from the setting named what), or
// derives the public-cloud one from the account name.
func (c *config) setEndpoint(endpoint, what string) error {
	endpoint = strings.TrimSpace(endpoint)
	if endpoint == "" {
		c.endpoint = "https://" + c.account + ".blob.core.windows.net"
		return nil
	}
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return invalid("setting %s: %q is not a URL: want like https://ACCOUNT.blob.core.windows.net", what, endpoint)
	case u.Scheme != "http" && u.Scheme != "https":
		return invalid("setting %s: %q must start with https:// (or http:// for a local emulator)", what, endpoint)
	case u.Host == "":
		return invalid("setting %s: %q has no host", what, endpoint)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return invalid("setting %s: the URL must not carry a query, fragment or user: put a SAS in %q instead", what, setSAS)
	}
	c.endpoint = strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/")
	if c.account == "" {
		// For messages only: the account a SAS endpoint belongs to.
		if host, _, ok := strings.Cut(u.Hostname(), ".blob."); ok {
			c.account = host
		}
	}
	return nil
}

// checkKey reports what is wrong with a shared key without showing it.
func checkKey(key string) error {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key))
	if err != nil || len(raw) == 0 {
		return fmt.Errorf("is not a base64 account key")
	}
	return nil
}

// checkSAS checks that token looks like a shared access signature and has
// not expired, so a stale token fails at start-up with a clear message.
func checkSAS(token, what string) error {
	q, err := url.ParseQuery(token)
	if err != nil || q.Get("sig") == "" {
		return invalid("setting %s does not look like a SAS token: want the query string with sv=, se=, sp= and sig= (a leading '?' is fine)", what)
	}
	if se := q.Get("se"); se != "" {
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z", "2006-01-02"} {
			if t, err := time.Parse(layout, se); err == nil {
				if time.Now().After(t) {
					return sdk.Errorf(sdk.PermissionDenied, "azure: setting %s expired at %s: create a new SAS token", what, t.UTC().Format(time.RFC3339))
				}
				break
			}
		}
	}
	return nil
}

func validContainer(name string) bool {
	switch name {
	case "$root", "$web", "$logs":
		return true
	}
	return len(name) >= 3 && len(name) <= 63 && containerNameRE.MatchString(name)
}

// suggest names the known setting closest to an unknown one (a typo or
// another backend's name for it).
func suggest(k string) string {
	aliases := map[string]string{
		"account": setAccount, "accountname": setAccount, "account_name": setAccount, "storage-account": setAccount,
		"bucket": setContainer, "container-name": setContainer,
		"prefix": setPath, "root": setPath,
		"key": setKey, "access-key": setKey, "account_key": setKey, "accountkey": setKey, "shared-key": setKey,
		"sas": setSAS, "sas_token": setSAS, "token": setSAS,
		"connection_string": setConnString, "connectionstring": setConnString,
		"url": setEndpoint, "service-url": setEndpoint, "endpoint-url": setEndpoint,
	}
	if s, ok := aliases[strings.ToLower(k)]; ok {
		return fmt.Sprintf(": did you mean %q?", s)
	}
	return ""
}

// invalid is a settings error. Messages may quote a setting that is not
// meant to be secret (an endpoint); scrub still drops any credential
// parameter pasted into it.
func invalid(format string, args ...any) error {
	return &sdk.Error{Code: sdk.InvalidArgument, Msg: scrub("azure: "+fmt.Sprintf(format, args...), nil)}
}
