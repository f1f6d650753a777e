// Package azure is the Azure Blob Storage backend: objects are block blobs
// named <path>/<key> in one container.
//
// Puts stream the data as blocks of blockSize bytes, at most
// uploadConcurrency in flight, and only commit the block list (or, for an
// object that fits in one block, send a single Put Blob) once the reader
// reached its end: uncommitted blocks are invisible and garbage collected
// by the service, so a failed or cancelled put leaves nothing. Conditions
// ride on that final request (If-None-Match: * and If-Match), which the
// service checks atomically.
//
// Listing uses the flat blob listing with a prefix, starting at startAfter
// where the service allows, and corrects the service's UTF-16 order of
// names to byte order (see list.go).
package azure

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sqlitereplicator/replicator/sdk"
)

const (
	// blockSize is the size of the staged blocks of a put, and so of the
	// buffers it holds: Azure's limit of 50,000 blocks a blob makes
	// maxObjectSize from it.
	blockSize = 4 << 20
	// uploadConcurrency bounds the blocks of one put in flight, so a put
	// holds at most blockSize*uploadConcurrency bytes of memory.
	uploadConcurrency = 2
	// maxBlocks is the service's limit of committed blocks per blob.
	maxBlocks     = 50_000
	maxObjectSize = int64(blockSize) * maxBlocks
	// deleteConcurrency bounds the parallel DeleteBlob calls of a Delete.
	deleteConcurrency = 16
	// maxNameChars and maxNameSegments are the service's limits on blob
	// names (in accounts without a hierarchical namespace).
	maxNameChars    = 1024
	maxNameSegments = 254
	// openTimeout bounds the reachability check of Open when the caller
	// gave no deadline: a black-holed endpoint must not hang start-up.
	openTimeout = 30 * time.Second
)

// Store is a container, or a path inside one, used as an object store.
type Store struct {
	cfg      *config
	maxSize  int64 // maxObjectSize; tests lower it
	pageSize int32 // names per list request; 0 is the service's 5,000
	cc       *container.Client
	// noStartFrom is set once the service refused a listing's startFrom.
	noStartFrom atomic.Bool
	transport   *http.Transport
	closeOnce   sync.Once
}

// Open opens the store that settings describe (see docs/backends.md)
// and checks that the container exists and the credentials are accepted,
// so a bad configuration fails at start-up.
func Open(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
	cfg, err := parseSettings(settings)
	if err != nil {
		return nil, err
	}
	s, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.check(ctx); err != nil {
		s.Close()
		return nil, err
	}
	slog.Info("azure: opened container", "endpoint", cfg.endpoint, "account", cfg.account,
		"container", cfg.container, "path", cfg.prefix, "credentials", cfg.credKind)
	return s, nil
}

func newStore(cfg *config) (*Store, error) {
	// An own transport, so Close can drop this store's idle connections.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 2 * time.Minute
	tr.MaxIdleConnsPerHost = 32
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: tr},
		// The core retries failed operations; the SDK's own retries only
		// smooth over brief blips (a block of a long put, a throttled
		// list page) and give up in seconds.
		Retry:     policy.RetryOptions{MaxRetries: 3, RetryDelay: 250 * time.Millisecond, MaxRetryDelay: 4 * time.Second},
		Telemetry: policy.TelemetryOptions{ApplicationID: "sqlite-replicator"},
	}}
	var cc *container.Client
	var err error
	switch {
	case cfg.key != "":
		var cred *container.SharedKeyCredential
		cred, err = container.NewSharedKeyCredential(cfg.account, cfg.key)
		if err == nil {
			cc, err = container.NewClientWithSharedKeyCredential(cfg.containerURL(), cred, opts)
		}
	default:
		cc, err = container.NewClientWithNoCredential(cfg.containerURL()+"?"+cfg.sas, opts)
	}
	if err != nil {
		return nil, invalid("cannot configure the client for %s with %s: %s", cfg.containerURL(), cfg.credKind, scrub(err.Error(), cfg.secrets))
	}
	return &Store{cfg: cfg, cc: cc, transport: tr, maxSize: maxObjectSize}, nil
}

// check makes sure the container exists and the credentials work. A SAS
// scoped to the container may not read container properties, so for one
// that is refused the check falls back to listing a single blob, which a
// SAS good for this store must allow anyway.
func (s *Store) check(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	_, err := s.cc.GetProperties(ctx, nil)
	if err != nil && s.cfg.sas != "" && bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch,
		bloberror.AuthorizationFailure, bloberror.AuthorizationResourceTypeMismatch) {
		pager := s.cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{MaxResults: to.Ptr[int32](1)})
		_, err = pager.NextPage(ctx)
	}
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			msg := "azure: open: container %q not found at %s (HTTP 404 %s): create the container or fix the %s setting"
			if re.ErrorCode != string(bloberror.ContainerNotFound) {
				msg += "; is the " + endpointSetting(s.cfg) + " setting the account's blob service URL?"
			}
			return sdk.Errorf(sdk.NotFound, msg, s.cfg.container, s.cfg.endpoint, re.ErrorCode, setContainer)
		}
		err = s.fail("open container "+s.cfg.containerURL(), err)
		var dns *net.DNSError
		switch {
		case errors.As(err, &dns) && dns.IsNotFound:
			// At start-up an unknown host is a wrong setting, not an outage.
			return sdk.Errorf(sdk.InvalidArgument, "%v", err)
		case errors.As(err, &re) && re.StatusCode == http.StatusBadRequest:
			return sdk.Errorf(sdk.InvalidArgument, "%v: is the %s setting the blob service URL of the account (https://ACCOUNT.blob.core.windows.net, or http://HOST:PORT/ACCOUNT for Azurite)?", err, endpointSetting(s.cfg))
		}
		return err
	}
	return s.checkNamespace(ctx)
}

// checkNamespace refuses accounts with a hierarchical namespace (Data Lake
// Storage Gen2): they list blobs in directory order rather than by name
// and keep directories as blobs, which break List's contract. The check
// is best effort: credentials that may not read account information skip
// it, and List still fails on an order it cannot repair.
func (s *Store) checkNamespace(ctx context.Context) error {
	info, err := s.cc.GetAccountInfo(ctx, nil)
	if err != nil || info.IsHierarchicalNamespaceEnabled == nil || !*info.IsHierarchicalNamespaceEnabled {
		return nil
	}
	return invalid("account %q has a hierarchical namespace (Data Lake Storage Gen2), which lists blobs in directory order: use a storage account without it", s.cfg.account)
}

// Capabilities: the final Put Blob or Put Block List carries the
// condition, which the service evaluates atomically.
func (s *Store) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{IfAbsent: true, IfMatch: true, MaxObjectSize: s.maxSize}
}

// Close drops the store's idle connections.
func (s *Store) Close() error {
	s.closeOnce.Do(s.transport.CloseIdleConnections)
	return nil
}

// blobName maps a key to its blob name. Besides the keys every store
// refuses, it refuses up front what the service would refuse with a bare
// 400: names over 1,024 characters or 254 path segments, and control
// characters, which are not valid in blob names.
func (s *Store) blobName(key string) (string, error) {
	if err := sdk.ValidateKey(key); err != nil {
		return "", err
	}
	name := s.fullName(key)
	if i := strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }); i >= 0 {
		return "", sdk.Errorf(sdk.InvalidArgument, "azure: key %q: Azure blob names cannot contain control characters", key)
	}
	if n := utf8.RuneCountInString(name); n > maxNameChars {
		return "", sdk.Errorf(sdk.InvalidArgument, "azure: key %.40q...: with path %q the blob name is %d characters, over Azure's limit of %d", key, s.cfg.prefix, n, maxNameChars)
	}
	if n := strings.Count(name, "/") + 1; n > maxNameSegments {
		return "", sdk.Errorf(sdk.InvalidArgument, "azure: key %.40q...: with path %q the blob name has %d path segments, over Azure's limit of %d", key, s.cfg.prefix, n, maxNameSegments)
	}
	return name, nil
}

// keyOf maps a listed blob name back to its key; ok is false for names
// outside the store's path.
func (s *Store) keyOf(name string) (string, bool) {
	if s.cfg.prefix == "" {
		return name, true
	}
	return strings.CutPrefix(name, s.cfg.prefix+"/")
}

// etagOf turns the service's quoted ETag into the opaque string the
// contract wants; quoteETag undoes it for a condition.
func etagOf(e *azcore.ETag) string {
	if e == nil {
		return ""
	}
	return strings.Trim(string(*e), `"`)
}

func quoteETag(etag string) *azcore.ETag {
	e := azcore.ETag(`"` + strings.Trim(etag, `"`) + `"`)
	return &e
}
