package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

// TestExit checks the exit code and the message of each kind of error.
func TestExit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		code    int
		message string
	}{
		{"None", nil, ExitOK, ""},
		{"Help", flag.ErrHelp, ExitOK, ""},
		{"Usage", Usagef("-layer %q: want all", "both"), ExitUsage, "replicator x: -layer \"both\": want all\n"},
		{"WrappedUsage", fmt.Errorf("reading flags: %w", UsageError{Msg: "bad"}), ExitUsage, "replicator x: reading flags: bad\n"},
		{"Failure", errors.New("store unreachable"), ExitFailure, "replicator x: store unreachable\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := Exit(&stderr, "replicator x", tc.err); code != tc.code || stderr.String() != tc.message {
				t.Errorf("exit %d, printed %q; want %d, %q", code, stderr.String(), tc.code, tc.message)
			}
		})
	}
}

// TestParseFlags checks that a flag error becomes a usage error, named for
// the command, and that -h is returned as flag.ErrHelp after the usage.
func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	fs := NewFlags(&stderr, "replicator x", "[-n N]")
	fs.Int("n", 1, "a `N`")
	if err := ParseFlags(fs, []string{"-n", "two"}); !errors.Is(err, ErrUsage) {
		t.Errorf("bad value: %v, want a usage error", err)
	}
	stderr.Reset()
	if err := ParseFlags(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) || !bytes.Contains(stderr.Bytes(), []byte("Usage: replicator x [-n N]")) {
		t.Errorf("-h: %v, printed %q; want flag.ErrHelp after the usage line", err, stderr.String())
	}
}
