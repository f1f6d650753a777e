package gcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/sqlitereplicator/replicator/sdk"
)

// httpStatus returns the HTTP status of a Cloud Storage error, or 0.
func httpStatus(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// codeOf classifies an error from the client library. It is the one place
// where the vendor's errors become sdk codes.
func codeOf(err error) sdk.Code {
	if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
		return sdk.NotFound
	}
	if st := httpStatus(err); st != 0 {
		switch {
		case st == http.StatusNotFound:
			return sdk.NotFound
		case st == http.StatusPreconditionFailed:
			return sdk.PreconditionFailed
		case st == http.StatusUnauthorized || st == http.StatusForbidden:
			return sdk.PermissionDenied
		case st == http.StatusBadRequest || st == http.StatusRequestedRangeNotSatisfiable:
			return sdk.InvalidArgument
		case st == http.StatusRequestTimeout || st == http.StatusConflict || st == http.StatusTooManyRequests || st >= 500:
			// 409 is a concurrent update of the same object: a retry may
			// succeed.
			return sdk.Unavailable
		}
		return sdk.Unknown
	}
	// A token request that the identity service refused (an unknown key, a
	// disabled account) is a credentials problem; one it failed to answer
	// is transient.
	var ae *auth.Error
	if errors.As(err, &ae) {
		if ae.Response != nil && ae.Response.StatusCode >= 400 && ae.Response.StatusCode < 500 && ae.Response.StatusCode != http.StatusTooManyRequests {
			return sdk.PermissionDenied
		}
		return sdk.Unavailable
	}
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Left in the chain: the SDK turns a cancelled call into a gRPC
		// Canceled; a library time-out that is not the caller's is
		// transient.
		return sdk.Unavailable
	case errors.As(err, &ne), errors.As(err, &ue):
		return sdk.Unavailable
	}
	msg := err.Error()
	for _, s := range []string{"connection reset", "connection refused", "broken pipe", "unexpected EOF", "http2: "} {
		if strings.Contains(msg, s) {
			return sdk.Unavailable
		}
	}
	return sdk.Unknown
}

// wrap returns err with its sdk code and what was being done ("get
// db/x"); permission errors also name the identity, so the fix is obvious.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	code := codeOf(err)
	if code == sdk.PermissionDenied {
		return sdk.Errorf(code, "gcs: %s in bucket %s: permission denied for %s (check that it may read, write, list and delete objects in the bucket): %w", what, s.cfg.bucket, s.cfg.credentialSource(), err)
	}
	return sdk.Errorf(code, "gcs: %s in bucket %s: %w", what, s.cfg.bucket, err)
}

// openError explains a failure of Open's reachability check: which bucket,
// which server, which identity, and what to check.
func openError(c *config, err error) error {
	code := codeOf(err)
	var hint string
	switch code {
	case sdk.NotFound:
		return sdk.Errorf(sdk.NotFound, "gcs: bucket %q does not exist at %s: create it, or fix the %q setting (and %q if you use an emulator): %w", c.bucket, c.where(), setBucket, setEndpoint, err)
	case sdk.PermissionDenied:
		hint = fmt.Sprintf("permission denied for %s; check that it may list objects in the bucket (roles/storage.objectAdmin grants what the backend needs)", c.credentialSource())
	case sdk.Unavailable:
		if c.endpoint != "" {
			hint = fmt.Sprintf("cannot reach the server; check the %q setting and that the server is running", setEndpoint)
		} else {
			hint = "cannot reach Cloud Storage; check the network and any proxy settings"
		}
	case sdk.InvalidArgument:
		hint = fmt.Sprintf("the server rejected the request; check the %q and %q settings", setBucket, setPath)
	default:
		hint = "unexpected error"
	}
	return sdk.Errorf(code, "gcs: open bucket %q at %s: %s: %w", c.bucket, c.where(), hint, err)
}

// clientError explains a failure to build the client, which in practice
// means no usable credentials were found.
func clientError(c *config, err error) error {
	if c.credFile == "" && c.endpoint == "" {
		return sdk.Errorf(sdk.PermissionDenied, "gcs: no credentials for bucket %q: %s could not be loaded; set %q to a service-account key file, set GOOGLE_APPLICATION_CREDENTIALS, or run 'gcloud auth application-default login': %w", c.bucket, c.credentialSource(), setCredentials, err)
	}
	if c.credFile != "" {
		return sdk.Errorf(sdk.PermissionDenied, "gcs: cannot use %s for bucket %q: %w", c.credentialSource(), c.bucket, err)
	}
	return sdk.Errorf(sdk.InvalidArgument, "gcs: create a client for %s: %w", c.where(), err)
}
