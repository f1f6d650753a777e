package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
)

const keygenHelp = `
Prints a new random 256-bit encryption key (64 hex digits) and, on stderr,
its key id, which every object encrypted with it names in its header. With
-o the key goes to a new file (mode 0600) instead. Keep a copy somewhere
other than the database's machine: without the key, the replica cannot be
restored. See docs/encryption.md.
`

func runKeygen(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "keygen", "[-o KEY_FILE]")
	out := fs.String("o", "", "write the key to this new file (mode 0600) instead of stdout")
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(e.stderr, keygenHelp) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("keygen takes no arguments")
	}
	k, err := crypt.GenerateKey()
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(e.stdout, k.Text())
		fmt.Fprintf(e.stderr, "key id %s\n", k.ID())
		return nil
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file (keygen never overwrites one): %w", err)
	}
	_, err = fmt.Fprintln(f, k.Text())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return fmt.Errorf("write key file %s: %w", *out, err)
	}
	fmt.Fprintf(e.stdout, "wrote key %s to %s\n", k.ID(), *out)
	return nil
}

// keyFlags are the -key-file and -key-env flags of the commands that read
// object bodies (restore, follow, verify). Both repeat; every key given is
// tried by id, so the keys of a rotation can all be given at once.
type keyFlags struct {
	files, envs keyFlagList
}

func addKeyFlags(fs *flag.FlagSet) *keyFlags {
	k := &keyFlags{}
	fs.Var(&k.files, "key-file", "encryption key file (one key per line; repeatable)")
	fs.Var(&k.envs, "key-env", "environment variable holding an encryption key (repeatable)")
	return k
}

// apply adds the keys given on the command line to r's (from its
// configuration, if any).
func (k *keyFlags) apply(r *replica.Replica) error {
	kr, err := crypt.Load(k.files, k.envs)
	if err != nil {
		return err
	}
	if r.Keys, err = crypt.Join(kr, r.Keys); err != nil {
		return fmt.Errorf("encryption keys: %w", err)
	}
	return nil
}

// keyHint adds what to do to an error that says an object needs a key.
func keyHint(err error) error {
	switch {
	case errors.Is(err, crypt.ErrKeyRequired):
		return fmt.Errorf("%w\nthe replica is encrypted: give its key with -key-file FILE or -key-env VAR", err)
	case errors.Is(err, crypt.ErrWrongKey):
		return fmt.Errorf("%w\ngive the key with that id with -key-file or -key-env (both repeat; all keys given are tried)", err)
	}
	return err
}

// keyFlagList is a repeatable string flag.
type keyFlagList []string

func (l *keyFlagList) String() string { return strings.Join(*l, ",") }
func (l *keyFlagList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
