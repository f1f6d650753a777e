package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sqlitereplicator/replicator/core/restore"
)

func runRestore(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "restore", "-o OUT [flags] (REPLICA_URL | -config FILE DB_PATH)")
	out := fs.String("o", "", "output database path (must not exist)")
	configPath := fs.String("config", "", "config file; the argument is then a database path")
	replicaName := fs.String("replica", "", "with -config: the replica to restore from (default: the first)")
	ts := fs.String("timestamp", "", "restore the last transaction committed at or before this time (RFC 3339)")
	txid := fs.Uint64("txid", 0, "restore exactly this transaction id")
	gen := fs.String("generation", "", "restore from this generation")
	ifDBNotExists := fs.Bool("if-db-not-exists", false, "do nothing (exit 0) when the output file exists")
	ifReplicaExists := fs.Bool("if-replica-exists", false, "do nothing (exit 0) when there is no replica")
	checkName := fs.String("integrity-check", "full", "what SQLite checks in the restored database: full (PRAGMA integrity_check), quick (PRAGMA quick_check: no index compared with its table) or none; the checksum is always verified")
	noIntegrity := fs.Bool("no-integrity-check", false, "the same as -integrity-check none")
	parallel := fs.Int("parallel", 8, "objects downloaded at once")
	keys := addKeyFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("need exactly one REPLICA_URL or (with -config) DB_PATH")
	}
	if *out == "" {
		return usagef("-o OUT is required")
	}
	check, err := restore.ParseCheck(*checkName)
	if err != nil {
		return usagef("-integrity-check: %v", err)
	}
	if *noIntegrity {
		both := false
		fs.Visit(func(f *flag.Flag) { both = both || f.Name == "integrity-check" })
		if both && check != restore.NoCheck {
			return usagef("give -integrity-check %s or -no-integrity-check, not both", check)
		}
		check = restore.NoCheck
	}
	var t restore.Target
	t.TxID, t.Generation = *txid, *gen
	if *ts != "" {
		v, err := time.Parse(time.RFC3339Nano, *ts)
		if err != nil {
			return usagef("-timestamp %q is not RFC 3339 (like 2026-11-22T10:00:00Z)", *ts)
		}
		t.Timestamp = v
	}
	if t.TxID != 0 && !t.Timestamp.IsZero() {
		return usagef("give -txid or -timestamp, not both")
	}
	if _, err := os.Lstat(*out); err == nil {
		if *ifDBNotExists {
			fmt.Fprintf(e.stdout, "%s exists; nothing to do\n", *out)
			return nil
		}
		return fmt.Errorf("%s exists; a restore never overwrites (remove it, choose another -o, or pass -if-db-not-exists)", *out)
	}
	rc, err := replicaArg(e, fs.Arg(0), *configPath, *replicaName)
	if err != nil {
		return err
	}
	r, closeFn, err := openReplica(ctx, e, rc)
	if err != nil {
		return err
	}
	defer closeFn()
	if err := keys.apply(r); err != nil {
		return err
	}
	res, err := restore.Run(ctx, r, t, *out, restore.Options{Parallel: *parallel, Check: check, Logger: e.log})
	if errors.Is(err, restore.ErrNoReplica) && *ifReplicaExists {
		fmt.Fprintf(e.stdout, "no replica at %s; nothing to do\n", rc)
		return nil
	}
	if errors.Is(err, restore.ErrNoReplica) {
		return fmt.Errorf("no replica at %s: nothing was ever replicated there, or the URL names another place (check it; -if-replica-exists makes this a success)", rc)
	}
	if err != nil {
		return keyHint(err)
	}
	fmt.Fprintf(e.stdout, "restored %s: generation %s, txid %d, committed %s, %d pages, checksum %s\n",
		*out, res.Generation, res.TxID, res.CommitTime.UTC().Format(time.RFC3339Nano), res.Pages, res.Checksum)
	return nil
}
