package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/internal/install"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// pluginPool shares one plugin process among every replica of the same
// backend: a daemon with a thousand databases on one bucket runs one s3
// plugin, not a thousand. A plugin stops when its last store is closed.
type pluginPool struct {
	e  *env
	mu sync.Mutex
	ps map[string]*pooled
}

type pooled struct {
	p     *host.Plugin
	users int
}

func newPluginPool(e *env) *pluginPool {
	return &pluginPool{e: e, ps: map[string]*pooled{}}
}

// open starts (or reuses) the replica's plugin and opens its store. The
// returned func closes the store and releases the plugin. wrap, when not
// nil, wraps the store (the daemon counts requests).
func (pp *pluginPool) open(ctx context.Context, rc config.ReplicaConfig, wrap func(sdk.Storage) sdk.Storage) (*replica.Replica, func(), error) {
	key, p, err := pp.acquire(rc)
	if err != nil {
		return nil, nil, err
	}
	st, err := p.Open(ctx, rc.Settings)
	if err != nil {
		pp.release(key)
		where := ""
		if rc.Line > 0 {
			where = fmt.Sprintf(" (config line %d)", rc.Line)
		}
		return nil, nil, fmt.Errorf("replica %s%s: %w", rc.Name, where, err)
	}
	pst, err := replica.WithPrefix(st, rc.Prefix)
	if err != nil {
		st.Close()
		pp.release(key)
		return nil, nil, fmt.Errorf("replica %s: prefix %q: %w", rc.Name, rc.Prefix, err)
	}
	pst = injectFaults(pp.e, rc.Name, pst) // testing hook: REPLICATOR_FAULTS (faults.go)
	if wrap != nil {
		pst = wrap(pst)
	}
	r := replica.New(rc.Name, pst, pp.e.log)
	if enc := rc.Encryption; enc != (config.Encryption{}) {
		if r.Keys, err = crypt.LoadKey(enc.KeyFile, enc.KeyEnv); err != nil {
			st.Close()
			pp.release(key)
			return nil, nil, fmt.Errorf("replica %s: encryption: %w", rc.Name, err)
		}
	}
	return r, func() { st.Close(); pp.release(key) }, nil
}

func (pp *pluginPool) acquire(rc config.ReplicaConfig) (string, *host.Plugin, error) {
	var key string
	var mk func() (*host.Plugin, error)
	if rc.Type == "plugin" {
		key = "plugin:" + rc.Plugin + "@" + rc.SHA256
		mk = func() (*host.Plugin, error) {
			return host.New(host.Config{Name: rc.Name, Path: rc.Plugin, SHA256: rc.SHA256, Logger: pp.e.log, OnRestart: pp.e.restartHook(rc.Name), IdleTimeout: pluginIdleTimeout, OnIdleStop: releaseMemory}), nil
		}
	} else {
		name := config.PluginName(rc.Type)
		if !install.IsPlugin(name) {
			return "", nil, fmt.Errorf("replica %s: unknown backend %q (first-party: %s)", rc.Name, rc.Type, strings.Join(install.PluginNames(), ", "))
		}
		key = "builtin:" + name
		mk = func() (*host.Plugin, error) {
			p, err := firstPartyPlugin(pp.e, name)
			if err != nil {
				return nil, fmt.Errorf("replica %s: %w", rc.Name, err)
			}
			return p, nil
		}
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if q, ok := pp.ps[key]; ok {
		q.users++
		return key, q.p, nil
	}
	p, err := mk()
	if err != nil {
		return "", nil, err
	}
	pp.ps[key] = &pooled{p: p, users: 1}
	return key, p, nil
}

func (pp *pluginPool) release(key string) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	q, ok := pp.ps[key]
	if !ok {
		return
	}
	if q.users--; q.users == 0 {
		q.p.Close()
		delete(pp.ps, key)
	}
}

// openReplica opens one replica with a plugin of its own, for the
// commands that work on a single replica.
func openReplica(ctx context.Context, e *env, rc config.ReplicaConfig) (*replica.Replica, func(), error) {
	return newPluginPool(e).open(ctx, rc, nil)
}
