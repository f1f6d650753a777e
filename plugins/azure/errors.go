package azure

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/sqlitereplicator/replicator/sdk"
)

// secretParamRE matches credential parameters of URLs and connection
// strings, which the SDK's transport errors can contain (a SAS travels in
// the request URL).
var secretParamRE = regexp.MustCompile(`(?i)\b(sig|accountkey|sharedaccesssignature)=[^&;\s"']*`)

// scrub removes secrets from a message that may quote a request or a
// setting: the generic credential parameters, and every secret value of
// the store's configuration wherever it appears.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	return secretParamRE.ReplaceAllString(msg, "${1}=REDACTED")
}

// opError is a vendor error with a message safe to show: Error returns
// only the scrubbed text, while Unwrap keeps the original reachable for
// errors.Is (context errors) and errors.As.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// fail turns an SDK error of operation op (like `put "k"`) into an
// sdk.Error with the right Code and a message that says what failed, where,
// and what to check. It is the one place vendor errors are classified.
func (s *Store) fail(op string, err error) error {
	if ctxErr := contextError(err); ctxErr != nil {
		return &opError{msg: fmt.Sprintf("azure: %s: %v", op, ctxErr), err: ctxErr}
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// No HTTP response: the connection failed (refused, reset, DNS,
		// TLS, timeout). Retrying may help; the message says where.
		msg := scrub(fmt.Sprintf("azure: %s: cannot reach %s: %s (check the %s setting and the network)",
			op, s.cfg.endpoint, rootCause(err).Error(), endpointSetting(s.cfg)), s.cfg.secrets)
		return &sdk.Error{Code: sdk.Unavailable, Msg: msg, Err: &opError{msg: msg, err: err}}
	}
	code := classify(re)
	status := fmt.Sprintf("HTTP %d", re.StatusCode)
	if re.ErrorCode != "" {
		status += " " + re.ErrorCode
	}
	var hint string
	switch {
	case code == sdk.PermissionDenied:
		hint = s.credentialHint(re)
	case bloberror.HasCode(re, bloberror.ContainerNotFound):
		hint = fmt.Sprintf(": container %q does not exist at %s: create it or fix the %s setting", s.cfg.container, s.cfg.endpoint, setContainer)
	case bloberror.HasCode(re, bloberror.InvalidBlockList):
		hint = ": a concurrent put of the same key discarded this put's uploaded blocks; retry"
	case code == sdk.Unavailable:
		hint = fmt.Sprintf(" from %s; retry later", s.cfg.endpoint)
	case re.StatusCode == http.StatusNotFound:
		// A 404 without a blob error code: not the blob service at all.
		if re.ErrorCode == "" {
			hint = fmt.Sprintf(" at %s: is %s the blob service URL of the account (https://ACCOUNT.blob.core.windows.net, or http://HOST:PORT/ACCOUNT for Azurite)?", s.cfg.containerURL(), endpointSetting(s.cfg))
		}
	}
	msg := scrub(fmt.Sprintf("azure: %s: %s%s", op, status, hint), s.cfg.secrets)
	return &sdk.Error{Code: code, Msg: msg, Err: &opError{msg: msg, err: err}}
}

// classify maps a blob service response to a Code.
func classify(re *azcore.ResponseError) sdk.Code {
	switch {
	case bloberror.HasCode(re, bloberror.BlobAlreadyExists):
		return sdk.AlreadyExists
	case bloberror.HasCode(re, bloberror.InvalidBlockList, bloberror.ServerBusy, bloberror.OperationTimedOut,
		bloberror.InternalError, bloberror.ContainerBeingDeleted, bloberror.AccountBeingCreated):
		return sdk.Unavailable
	}
	switch s := re.StatusCode; {
	case s == http.StatusNotFound:
		return sdk.NotFound
	case s == http.StatusPreconditionFailed:
		return sdk.PreconditionFailed
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return sdk.PermissionDenied
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return sdk.Unavailable
	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge || s == http.StatusRequestURITooLong:
		return sdk.InvalidArgument
	}
	return sdk.Unknown
}

// credentialHint explains a 401/403: which credential setting to check
// (never its value), or which permission is missing.
func (s *Store) credentialHint(re *azcore.ResponseError) string {
	acct := s.cfg.account
	if acct == "" {
		acct = s.cfg.endpoint
	}
	check := fmt.Sprintf("check that %s belongs to account %q and is current (keys are rotated, SAS tokens expire)", s.cfg.credKind, acct)
	switch {
	case bloberror.HasCode(re, bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationResourceTypeMismatch,
		bloberror.AuthorizationServiceMismatch, bloberror.InsufficientAccountPermissions):
		return fmt.Sprintf(": the credentials from %s lack a permission on container %q: a SAS needs read, add, create, write, delete and list (sp=racwdl) on the container's blobs",
			s.cfg.credKind, s.cfg.container)
	case bloberror.HasCode(re, bloberror.AuthorizationSourceIPMismatch, bloberror.AuthorizationProtocolMismatch):
		return fmt.Sprintf(": account %q refuses this client's address or protocol: check the SAS's allowed IP range and protocol", acct)
	case bloberror.HasCode(re, bloberror.AccountIsDisabled):
		return fmt.Sprintf(": account %q is disabled", acct)
	case bloberror.HasCode(re, bloberror.AuthorizationFailure):
		// The service says this for a bad signature (Azurite) as well as
		// for a firewall that blocks the client (Azure).
		return fmt.Sprintf(": account %q refused the request: %s, and that the account's network rules allow this client", acct, check)
	}
	return fmt.Sprintf(": account %q rejected the credentials: %s", acct, check)
}

// endpointSetting names the setting the endpoint came from.
func endpointSetting(c *config) string {
	if c.credKind == setConnString {
		return setConnString + " (BlobEndpoint)"
	}
	return setEndpoint + " (or " + setAccount + ")"
}

// contextError returns the context error in err's chain, if any.
func contextError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return nil
}

// rootCause strips the URL wrapper of a transport error (it repeats the
// request URL) down to the network error.
func rootCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns
	}
	return err
}
