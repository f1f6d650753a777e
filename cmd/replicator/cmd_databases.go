package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

func runDatabases(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "databases", "[-addr HOST:PORT] [-json]")
	addr := fs.String("addr", defaultAddr, "address of the running daemon (its replicate -addr)")
	asJSON := fs.Bool("json", false, "print the daemon's status as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	body, err := fetchDatabases(ctx, *addr)
	if err != nil {
		return err
	}
	var dbs []dbStatusJSON
	if err := json.Unmarshal(body, &dbs); err != nil {
		return fmt.Errorf("the daemon at %s answered with unexpected data: %w", *addr, err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(dbs)
	}
	printDatabases(e.stdout, dbs, time.Now())
	return nil
}

func fetchDatabases(ctx context.Context, addr string) ([]byte, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/databases", nil)
	if err != nil {
		return nil, usagef("bad -addr %q: %v", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("no replicator daemon listening on %s (start one with 'replicator replicate -addr %s ...'): %w", addr, addr, err)
		}
		return nil, fmt.Errorf("query the daemon at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("query the daemon at %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the daemon at %s answered %s: %s", addr, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func printDatabases(w io.Writer, dbs []dbStatusJSON, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DB\tREPLICA\tGENERATION\tTXID\tLAG\tLAST SYNC\tSTATUS")
	for _, d := range dbs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.DB, "(captured)", orDash(d.Generation), d.TxID, "-", "-", "-")
		for _, r := range d.Replicas {
			last := "never"
			if r.LastSync != nil {
				last = fmt.Sprintf("%s ago", now.Sub(*r.LastSync).Round(time.Second))
			}
			lag := (time.Duration(r.LagSeconds * float64(time.Second))).Round(time.Millisecond).String()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.DB, r.Name, orDash(r.Generation), r.TxID, lag, last, r.Status)
		}
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
