package restore_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/restore"
)

// damagedSource replicates a database of two tables, each with an index,
// whose schema was then edited by damage (through writable_schema, so the
// edit is an ordinary transaction in the WAL): the replica then holds that
// damage faithfully, and only SQLite's checks, not the checksum, can find
// it.
func damagedSource(t *testing.T, damage string) *replica.Replica {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(1)
	for _, q := range []string{
		"CREATE TABLE a (x INTEGER); CREATE INDEX a_x ON a (x)",
		"CREATE TABLE b (x INTEGER); CREATE INDEX b_x ON b (x)",
		"WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 500) INSERT INTO a SELECT v FROM s",
		"WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 500) INSERT INTO b SELECT v + 1000 FROM s",
	} {
		if _, err := app.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var aRoot, bRoot int
	if err := app.QueryRow("SELECT (SELECT rootpage FROM sqlite_schema WHERE name = 'a_x'), (SELECT rootpage FROM sqlite_schema WHERE name = 'b_x')").Scan(&aRoot, &bRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec("PRAGMA writable_schema = ON"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(damage, aRoot, bRoot); err != nil {
		t.Fatalf("%s: %v", damage, err)
	}
	r, _, d, stop := replicating(t, path)
	if err := d.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop()
	return r
}

// TestCheckLevels: each -integrity-check level finds what its PRAGMA
// finds, and a database that fails the check is never handed over.
func TestCheckLevels(t *testing.T) {
	const (
		// The two indexes trade b-trees: every page is still used once and
		// every b-tree is sound, but neither index holds its table's rows.
		// (?1 and ?2 are the indexes' root pages.)
		swapIndexes = `UPDATE sqlite_schema SET rootpage = CASE name WHEN 'a_x' THEN ?2 ELSE ?1 END WHERE name IN ('a_x', 'b_x')`
		// Both indexes name a_x's b-tree: its pages are claimed twice and
		// b_x's are claimed by none, faults in the file's structure.
		shareTree = `UPDATE sqlite_schema SET rootpage = ?1 WHERE name = 'b_x'`
	)
	for _, tc := range []struct {
		name, damage string
		check        restore.Check
		fails        string // the PRAGMA named in the error, or "" for success
	}{
		{"swap indexes", swapIndexes, restore.FullCheck, "integrity_check"},
		{"swap indexes", swapIndexes, restore.QuickCheck, ""},
		{"swap indexes", swapIndexes, restore.NoCheck, ""},
		{"share a tree", shareTree, restore.FullCheck, "integrity_check"},
		{"share a tree", shareTree, restore.QuickCheck, "quick_check"},
		{"share a tree", shareTree, restore.NoCheck, ""},
	} {
		t.Run(tc.name+"/"+tc.check.String(), func(t *testing.T) {
			r := damagedSource(t, tc.damage)
			out := filepath.Join(t.TempDir(), "out.db")
			_, err := restore.Run(context.Background(), r, restore.Target{}, out, restore.Options{Check: tc.check})
			if tc.fails == "" {
				if err != nil {
					t.Fatalf("restore with -integrity-check %s: %v", tc.check, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "fails PRAGMA "+tc.fails) {
				t.Fatalf("restore with -integrity-check %s: %v, want it to fail PRAGMA %s", tc.check, err, tc.fails)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a database that failed the check was left at the output path")
			}
		})
	}
}

func TestParseCheck(t *testing.T) {
	for _, c := range []restore.Check{restore.FullCheck, restore.QuickCheck, restore.NoCheck} {
		got, err := restore.ParseCheck(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCheck(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
	for _, s := range []string{"", "FULL", "yes", "integrity_check"} {
		if _, err := restore.ParseCheck(s); err == nil {
			t.Errorf("ParseCheck(%q) succeeded", s)
		}
	}
	var zero restore.Options
	if zero.Check != restore.FullCheck {
		t.Error("the zero Options do not run the full check")
	}
}
