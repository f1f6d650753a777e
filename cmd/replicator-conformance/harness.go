package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/internal/cli"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// The replication-scenario layer of "replicator conformance": the child
// runs conformance.RunScenarios after the storage suite, with a harness
// that expresses the backend under test as a replica of the daemon's
// config file and gives every scenario a fresh sub-path, like the storage
// suite's stores.

// Layers of the suite, as -layer names them.
const (
	layerStorage     = "storage"
	layerReplication = "replication"
)

// parseLayers reads -layer: "all", "storage" or "replication".
func parseLayers(v string) ([]string, error) {
	switch v {
	case "all", "":
		return []string{layerStorage, layerReplication}, nil
	case layerStorage, layerReplication:
		return []string{v}, nil
	}
	return nil, cli.Usagef("-layer %q: want all, storage or replication", v)
}

// configType is the config file's replica type of a first-party plugin.
func configType(builtin string) string {
	switch builtin {
	case "fs":
		return "file"
	case "azure":
		return "abs"
	}
	return builtin
}

// pluginHarness makes the suite's stores from one plugin process: a fresh
// sub-path of the spec's path setting for every test.
type pluginHarness struct {
	p    *host.Plugin
	spec conformanceSpec
	// prefix starts the name of each fresh sub-path, so that two
	// harnesses of one run never share one.
	prefix string
	n      atomic.Int64
}

func (h *pluginHarness) settings() map[string]string {
	settings := make(map[string]string, len(h.spec.Settings)+1)
	for k, v := range h.spec.Settings {
		settings[k] = v
	}
	if ps := h.spec.PathSetting; ps != "" {
		sub := fmt.Sprintf("conformance-%s/%s%04d", h.spec.RunID, h.prefix, h.n.Add(1))
		if base := strings.TrimSuffix(settings[ps], "/"); base != "" {
			sub = base + "/" + sub
		}
		settings[ps] = sub
	}
	return settings
}

func (h *pluginHarness) MakeStorage(ctx context.Context, t *testing.T) (sdk.Storage, error) {
	_, st, err := h.openFresh(ctx, t)
	return st, err
}

// openFresh opens a store at a fresh sub-path and returns its settings.
func (h *pluginHarness) openFresh(ctx context.Context, t *testing.T) (map[string]string, sdk.Storage, error) {
	settings := h.settings()
	st, err := h.p.Open(ctx, settings)
	if err != nil {
		return nil, nil, err
	}
	if !h.spec.Keep {
		// Runs after the suite closed st: delete what the test left
		// through a store of its own.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := h.clean(ctx, settings); err != nil {
				t.Logf("clean-up (not part of the verdict): %v", err)
			}
		})
	}
	return settings, st, nil
}

// clean deletes every object of the store with settings.
func (h *pluginHarness) clean(ctx context.Context, settings map[string]string) error {
	st, err := h.p.Open(ctx, settings)
	if err != nil {
		return err
	}
	defer st.Close()
	var keys []string
	if err := st.List(ctx, "", "", func(info sdk.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		return err
	}
	for batch := range slices.Chunk(keys, 500) {
		if err := st.Delete(ctx, batch...); err != nil {
			return err
		}
	}
	return nil
}

func (h *pluginHarness) Close() { h.p.Close() }

// Replicator is the executable the scenarios run as the daemon.
func (h *pluginHarness) Replicator() string { return h.spec.Replicator }

// NewReplica gives a scenario a fresh sub-path of the backend, and a store
// on it through the same plugin.
func (h *pluginHarness) NewReplica(ctx context.Context, t *testing.T) (conformance.ReplicaConfig, sdk.Storage, error) {
	settings, st, err := h.openFresh(ctx, t)
	if err != nil {
		return conformance.ReplicaConfig{}, nil, err
	}
	rc := conformance.ReplicaConfig{Settings: settings}
	if h.spec.Builtin != "" {
		rc.Type = configType(h.spec.Builtin)
	} else {
		rc.Type, rc.Plugin, rc.SHA256 = "plugin", h.spec.Path, h.spec.SHA256
	}
	return rc, st, nil
}

// sortResults puts the storage suite's results first, in the order they
// ended (the suite runs them one at a time), then the scenarios in the
// suite's order (they run in parallel and end in any order).
func sortResults(results []conformance.Result) {
	order := map[string]int{}
	for i, n := range conformance.ScenarioNames() {
		order[conformance.ScenarioRoot+"/"+n] = i + 1
	}
	slices.SortStableFunc(results, func(a, b conformance.Result) int {
		return order[a.Name] - order[b.Name]
	})
}

// describeLayers names the layers for the progress output.
func describeLayers(layers []string) string {
	if len(layers) == 1 {
		return layers[0] + " layer"
	}
	return strings.Join(layers, " and ") + " layers"
}
