package main

import (
	"context"
	"io"
	"os"

	"github.com/sqlitereplicator/replicator/conformance/faults"
	"github.com/sqlitereplicator/replicator/sdk"
)

// injectFaults is a testing hook: when the environment variable
// REPLICATOR_FAULTS holds a fault spec (see package conformance/faults), it
// wraps the replica's store so that its calls fail, stall or break off,
// which lets the conformance scenarios disturb every backend the same way,
// even a local directory. Without the variable it returns st unchanged. A
// spec that does not parse makes every call fail with the parse error, so
// a mistyped spec cannot pass for a fault-free run.
func injectFaults(e *env, replica string, st sdk.Storage) sdk.Storage {
	spec, ok := os.LookupEnv(faults.Env)
	if !ok || spec == "" {
		return st
	}
	sp, err := faults.Parse(spec)
	if err != nil {
		e.log.Error("fault injection spec refused", "replica", replica, "err", err)
		return brokenStore{st: st, err: sdk.Errorf(sdk.InvalidArgument, "%v", err)}
	}
	e.log.Warn("injecting storage faults (testing hook)", "replica", replica, "spec", sp.String())
	return faults.Wrap(st, sp, func(err error) { e.log.Warn("storage fault injected", "replica", replica, "err", err) })
}

// brokenStore fails every call with err.
type brokenStore struct {
	st  sdk.Storage
	err error
}

func (b brokenStore) Put(context.Context, string, io.Reader, sdk.PutOptions) (sdk.ObjectInfo, error) {
	return sdk.ObjectInfo{}, b.err
}

func (b brokenStore) Get(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, b.err
}

func (b brokenStore) Stat(context.Context, string) (sdk.ObjectInfo, error) {
	return sdk.ObjectInfo{}, b.err
}

func (b brokenStore) List(context.Context, string, string, func(sdk.ObjectInfo) error) error {
	return b.err
}

func (b brokenStore) Delete(context.Context, ...string) error { return b.err }

func (b brokenStore) Capabilities() sdk.Capabilities { return b.st.Capabilities() }

func (b brokenStore) Close() error { return b.st.Close() }
