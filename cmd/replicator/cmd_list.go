package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// listFlags are the flags shared by generations, snapshots and segments.
type listFlags struct {
	asJSON bool
	only   string // -generation
	// keyIDs: read every segment's header to show which key encrypted it
	// (snapshots show it always: their headers are read anyway).
	keyIDs bool
}

// listArgs parses the flags shared by generations, snapshots and segments
// and opens the replica. Listing reads headers only, which stay in the
// clear: it needs no encryption key.
func listArgs(ctx context.Context, e *env, name string, args []string) (*replica.Replica, func(), listFlags, error) {
	var lf listFlags
	fs := newFlags(e, name, "[-json] [-generation G] (REPLICA_URL | -config FILE DB_PATH)")
	fs.BoolVar(&lf.asJSON, "json", false, "print JSON")
	configPath := fs.String("config", "", "config file; the argument is then a database path")
	replicaName := fs.String("replica", "", "with -config: the replica (default: the first)")
	fs.StringVar(&lf.only, "generation", "", "only this generation")
	if name == "segments" {
		fs.BoolVar(&lf.keyIDs, "key-ids", false, "show the id of the key that encrypted each segment (one ranged read per segment)")
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, lf, err
	}
	if fs.NArg() != 1 {
		return nil, nil, lf, usagef("need exactly one REPLICA_URL or (with -config) DB_PATH")
	}
	rc, err := replicaArg(e, fs.Arg(0), *configPath, *replicaName)
	if err != nil {
		return nil, nil, lf, err
	}
	r, closeFn, err := openReplica(ctx, e, rc)
	if err != nil {
		return nil, nil, lf, err
	}
	return r, closeFn, lf, nil
}

// eachGeneration opens the replica named by args and calls fn with the
// objects of each generation (or of -generation), oldest first. It returns
// the flags given.
func eachGeneration(ctx context.Context, e *env, name string, args []string, fn func(r *replica.Replica, lf listFlags, gen string, objs []replica.Object) error) (listFlags, error) {
	r, closeFn, lf, err := listArgs(ctx, e, name, args)
	if err != nil {
		return lf, err
	}
	defer closeFn()
	gens := []string{lf.only}
	if lf.only == "" {
		if gens, err = r.Generations(ctx); err != nil {
			return lf, err
		}
	}
	for _, g := range gens {
		objs, err := r.Objects(ctx, g)
		if err != nil {
			return lf, err
		}
		if err := fn(r, lf, g, objs); err != nil {
			return lf, err
		}
	}
	return lf, nil
}

// keyColumn is how a header's encryption shows in a listing: the key id,
// or "-" for a plaintext object.
func keyColumn(h segment.Header) string {
	if h.Encryption == segment.EncryptionNone {
		return "-"
	}
	return h.KeyID.String()
}

type generationRow struct {
	Generation string    `json:"generation"`
	Snapshots  int       `json:"snapshots"`
	Segments   int       `json:"segments"`
	FirstTxID  uint64    `json:"first_txid"`
	LastTxID   uint64    `json:"last_txid"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	Bytes      int64     `json:"bytes"`
}

func runGenerations(ctx context.Context, e *env, args []string) error {
	var rows []generationRow
	lf, err := eachGeneration(ctx, e, "generations", args, func(r *replica.Replica, _ listFlags, g string, objs []replica.Object) error {
		if len(objs) == 0 {
			return nil
		}
		row := generationRow{Generation: g, FirstTxID: objs[0].Min}
		var last replica.Object
		for _, o := range objs {
			if o.Snapshot() {
				row.Snapshots++
			} else {
				row.Segments++
			}
			row.Bytes += o.Size
			if o.Max >= last.Max {
				last = o
			}
		}
		row.LastTxID = last.Max
		if h, err := r.ReadHeader(ctx, objs[0]); err == nil {
			row.Created = h.FirstCommitTime().UTC()
		}
		if h, err := r.ReadHeader(ctx, last); err == nil {
			row.Updated = h.LastCommitTime().UTC()
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return err
	}
	if lf.asJSON {
		return printJSON(e, rows)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GENERATION\tSNAPSHOTS\tSEGMENTS\tTXIDS\tCREATED\tUPDATED\tBYTES")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d-%d\t%s\t%s\t%d\n", r.Generation, r.Snapshots, r.Segments, r.FirstTxID, r.LastTxID,
			r.Created.Format(time.RFC3339), r.Updated.Format(time.RFC3339), r.Bytes)
	}
	return tw.Flush()
}

type objectRow struct {
	Generation string    `json:"generation"`
	Level      int       `json:"level,omitempty"`
	MinTxID    uint64    `json:"min_txid"`
	MaxTxID    uint64    `json:"max_txid"`
	Bytes      int64     `json:"bytes"`
	Committed  time.Time `json:"committed,omitzero"`
	Key        string    `json:"key"`
	// EncryptionKey is the id of the key that encrypted the object, "-"
	// for none; empty when the header was not read.
	EncryptionKey string `json:"encryption_key,omitempty"`
}

func runSnapshots(ctx context.Context, e *env, args []string) error {
	return listObjects(ctx, e, "snapshots", args, true)
}

func runSegments(ctx context.Context, e *env, args []string) error {
	return listObjects(ctx, e, "segments", args, false)
}

func listObjects(ctx context.Context, e *env, name string, args []string, snapshots bool) error {
	var rows []objectRow
	lf, err := eachGeneration(ctx, e, name, args, func(r *replica.Replica, lf listFlags, g string, objs []replica.Object) error {
		for _, o := range objs {
			if o.Snapshot() != snapshots {
				continue
			}
			row := objectRow{Generation: g, Level: o.Level, MinTxID: o.Min, MaxTxID: o.Max, Bytes: o.Size, Key: o.Key}
			if snapshots {
				row.Level = 0
			}
			if snapshots || lf.keyIDs {
				if h, err := r.ReadHeader(ctx, o); err == nil {
					row.EncryptionKey = keyColumn(h)
					if snapshots {
						row.Committed = h.LastCommitTime().UTC()
					}
				}
			}
			rows = append(rows, row)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if lf.asJSON {
		return printJSON(e, rows)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	switch {
	case snapshots:
		fmt.Fprintln(tw, "GENERATION\tTXID\tCOMMITTED\tBYTES\tKEY")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", r.Generation, r.MinTxID, r.Committed.Format(time.RFC3339), r.Bytes, r.EncryptionKey)
		}
	case lf.keyIDs:
		fmt.Fprintln(tw, "GENERATION\tLEVEL\tTXIDS\tBYTES\tKEY")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%d-%d\t%d\t%s\n", r.Generation, r.Level, r.MinTxID, r.MaxTxID, r.Bytes, r.EncryptionKey)
		}
	default:
		fmt.Fprintln(tw, "GENERATION\tLEVEL\tTXIDS\tBYTES")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%d-%d\t%d\n", r.Generation, r.Level, r.MinTxID, r.MaxTxID, r.Bytes)
		}
	}
	return tw.Flush()
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
