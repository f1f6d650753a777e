// Package cli is what the replicator executables (replicator and
// replicator-conformance) share in how they read a command line and exit:
// usage errors, flag sets that return their errors rather than exit, and the
// exit codes, so that every command of either follows the same rules.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ErrUsage marks an error as the user's: wrong flags or arguments.
var ErrUsage = errors.New("usage")

// UsageError is a command-line mistake; it exits with ExitUsage.
type UsageError struct{ Msg string }

func (e UsageError) Error() string   { return e.Msg }
func (e UsageError) Is(t error) bool { return t == ErrUsage }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error { return UsageError{fmt.Sprintf(format, args...)} }

// NewFlags returns a FlagSet for command name ("replicator restore") whose
// errors are returned, not printed and exited on, so every command shares the
// exit-code rules. usage follows the command in the usage line.
func NewFlags(stderr io.Writer, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses args, turning flag errors into usage errors.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err.Error()}
	}
	return nil
}

// Exit reports the error err of command name ("replicator restore") on
// stderr and returns the exit code for it: ExitOK for none or a request for
// help, ExitUsage for a usage error, ExitFailure for any other.
func Exit(stderr io.Writer, name string, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
}
