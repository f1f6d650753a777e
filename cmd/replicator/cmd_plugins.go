package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/sqlitereplicator/replicator/internal/install"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// pluginStatus is one row of "replicator plugins".
type pluginStatus struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Path      string `json:"path"`
	Protocols []int  `json:"protocols"`
	Error     string `json:"error,omitempty"`
}

// runPlugins starts every backend out-of-process, exactly as replication
// would, and reports the protocol version it negotiated: a listed backend
// is one that is known to start.
func runPlugins(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "plugins", "[-json]")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments: %v", fs.Args())
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	var rows []pluginStatus
	failed := 0
	for _, name := range install.PluginNames() {
		row := pluginStatus{Name: name, Kind: "first-party", Protocols: []int{}}
		path, args, err := install.LocatePlugin(self, name)
		if err == nil {
			row.Path = path
			if len(args) > 0 {
				row.Path = "(compiled into replicator)"
			}
			p := host.New(host.Config{Name: name, Path: path, Args: args, Logger: e.log})
			var v int
			v, err = p.Start(ctx)
			p.Close()
			if err == nil {
				row.Protocols = []int{v}
			}
		}
		if err != nil {
			row.Error = err.Error()
			failed++
		}
		rows = append(rows, row)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tPROTOCOLS\tPATH\tSTATUS")
		for _, r := range rows {
			status := "ok"
			if r.Error != "" {
				status = r.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, protocols(r.Protocols), orDash(r.Path), status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d plugins failed to start", failed, len(rows))
	}
	return nil
}

func protocols(vs []int) string {
	if len(vs) == 0 {
		return "-"
	}
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(v)
	}
	return s
}
