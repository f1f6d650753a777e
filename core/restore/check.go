package restore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // for the integrity check

	"github.com/sqlitereplicator/replicator/core/sqliteuri"
)

// Check is what SQLite is asked about a restored database before it is
// handed over. The checksum needs no asking: it always proves the file
// equals the source at the target, byte for byte. SQLite's checks look
// further, at whether that source was itself a sound database; they cost
// more than the rest of a restore, so the choice is the user's.
type Check int

const (
	// FullCheck runs PRAGMA integrity_check: every b-tree's structure and
	// the file's page accounting, and that every index holds exactly the
	// rows of its table. It is the default because it finds the most.
	FullCheck Check = iota
	// QuickCheck runs PRAGMA quick_check: all of the above except the
	// comparison of each index with its table, which is most of the full
	// check's time (an index lookup per row).
	QuickCheck
	// NoCheck asks SQLite nothing; the checksum is still verified.
	NoCheck
)

var checkNames = [...]string{FullCheck: "full", QuickCheck: "quick", NoCheck: "none"}

func (c Check) String() string {
	if c < 0 || int(c) >= len(checkNames) {
		return fmt.Sprintf("Check(%d)", int(c))
	}
	return checkNames[c]
}

// ParseCheck reads a Check by its name: full, quick or none.
func ParseCheck(s string) (Check, error) {
	for c, name := range checkNames {
		if s == name {
			return Check(c), nil
		}
	}
	return 0, fmt.Errorf("%q is not a check level: want full, quick or none", s)
}

// pragma returns the PRAGMA the check runs, or "" for none.
func (c Check) pragma() string {
	switch c {
	case FullCheck:
		return "integrity_check"
	case QuickCheck:
		return "quick_check"
	}
	return ""
}

// run asks SQLite the check's PRAGMA about the database at path and
// returns an error listing what it found.
func (c Check) run(ctx context.Context, path string) error {
	pragma := c.pragma()
	db, err := sql.Open("sqlite", sqliteuri.For(path, url.Values{"mode": {"ro"}}))
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return fmt.Errorf("%s of the restored database: %w", pragma, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s of the restored database: %w", pragma, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the restored database fails PRAGMA %s: %v; the replica holds this database as the source had it, so the source needs repair (nothing was written to the output)", pragma, problems)
	}
	return nil
}
