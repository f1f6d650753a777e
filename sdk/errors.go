package sdk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code classifies an error so that callers on either side of the plugin
// boundary can branch on it: retry a transient failure, treat NotFound as
// an answer, stop on a permanent one.
type Code int

// The codes, each carried over gRPC as the status code named in its comment.
const (
	// Unknown is a permanent failure of no other kind (codes.Unknown).
	Unknown Code = iota
	// NotFound: the object does not exist (codes.NotFound).
	NotFound
	// AlreadyExists: an IfAbsent put found the key taken (codes.AlreadyExists).
	AlreadyExists
	// PreconditionFailed: an IfMatch put found another ETag or no object
	// (codes.FailedPrecondition).
	PreconditionFailed
	// PermissionDenied: credentials are missing, wrong or lack a right
	// (codes.PermissionDenied, and codes.Unauthenticated when received).
	PermissionDenied
	// InvalidArgument: a bad key, setting or request; retrying will not
	// help (codes.InvalidArgument).
	InvalidArgument
	// Unavailable: a transient failure such as a dropped connection, a
	// throttled request or a plugin that died; retrying may succeed
	// (codes.Unavailable, and codes.ResourceExhausted and codes.Aborted
	// when received).
	Unavailable
)

var codeNames = [...]string{"unknown", "not found", "already exists", "precondition failed", "permission denied", "invalid argument", "unavailable"}

func (c Code) String() string {
	if c < 0 || int(c) >= len(codeNames) {
		return fmt.Sprintf("code(%d)", int(c))
	}
	return codeNames[c]
}

// Error is an error with a Code. errors.Is(err, ErrNotFound) and friends
// match any *Error of the same code, wherever it came from.
type Error struct {
	Code Code
	Msg  string
	Err  error // the underlying error, if any
}

// Sentinels for errors.Is. They are compared by code, never returned as is
// by the SDK.
var (
	ErrNotFound           = &Error{Code: NotFound, Msg: "not found"}
	ErrAlreadyExists      = &Error{Code: AlreadyExists, Msg: "already exists"}
	ErrPreconditionFailed = &Error{Code: PreconditionFailed, Msg: "precondition failed"}
	ErrPermissionDenied   = &Error{Code: PermissionDenied, Msg: "permission denied"}
	ErrInvalidArgument    = &Error{Code: InvalidArgument, Msg: "invalid argument"}
	ErrUnavailable        = &Error{Code: Unavailable, Msg: "unavailable"}
)

// Errorf returns an *Error with code c and a formatted message. A %w verb
// keeps the wrapped error reachable through errors.Unwrap.
func Errorf(c Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: c, Msg: err.Error(), Err: errors.Unwrap(err)}
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the Code of err: the code of the first *Error in its
// chain, or a code derived from well-known standard errors.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return Unknown
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, fs.ErrNotExist):
		return NotFound
	case errors.Is(err, fs.ErrExist):
		return AlreadyExists
	case errors.Is(err, fs.ErrPermission):
		return PermissionDenied
	}
	return Unknown
}

// IsTransient reports whether retrying the failed operation may succeed.
func IsTransient(err error) bool { return CodeOf(err) == Unavailable }

// toStatus turns a plugin's error into the gRPC status sent to the host.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	c := codes.Unknown
	switch CodeOf(err) {
	case NotFound:
		c = codes.NotFound
	case AlreadyExists:
		c = codes.AlreadyExists
	case PreconditionFailed:
		c = codes.FailedPrecondition
	case PermissionDenied:
		c = codes.PermissionDenied
	case InvalidArgument:
		c = codes.InvalidArgument
	case Unavailable:
		c = codes.Unavailable
	}
	return status.Error(c, err.Error())
}

// fromStatus turns an error received over gRPC back into an *Error (or a
// context error), so callers on the host branch on it exactly as they
// would on the plugin's own error.
func fromStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Code: Unavailable, Msg: err.Error(), Err: err}
	}
	var c Code
	switch st.Code() {
	case codes.NotFound:
		c = NotFound
	case codes.AlreadyExists:
		c = AlreadyExists
	case codes.FailedPrecondition:
		c = PreconditionFailed
	case codes.PermissionDenied, codes.Unauthenticated:
		c = PermissionDenied
	case codes.InvalidArgument, codes.OutOfRange:
		c = InvalidArgument
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		c = Unavailable
	case codes.Canceled:
		return fmt.Errorf("%s: %w", st.Message(), context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", st.Message(), context.DeadlineExceeded)
	default:
		c = Unknown
	}
	return &Error{Code: c, Msg: st.Message()}
}
