package sqliteuri_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/sqlitereplicator/replicator/core/sqliteuri"
)

// TestSpecialNames opens databases whose names hold every character that
// means something in a URI, and checks that SQLite opened that file and
// no other.
func TestSpecialNames(t *testing.T) {
	for i, name := range []string{"plain.db", "app#1.db", "x?mode=ro.db", "100%.db", "a b.db", "semi;colon&amp.db", "%41.db", "é.db"} {
		// Named by number: the test's directory takes the subtest's name.
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			q := url.Values{}
			q.Add("_pragma", "journal_mode(WAL)")
			db, err := sql.Open("sqlite", sqliteuri.For(path, q))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE t (x)"); err != nil {
				t.Fatal(err)
			}
			var mode string
			if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal_mode = %q, %v: the parameters were not applied", mode, err)
			}
			db.Close()
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != name {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Fatalf("files after opening %q: %q, want just it", name, names)
			}
		})
	}
	if got, want := sqliteuri.For("/a/b.db", nil), "file:/a/b.db"; got != want {
		t.Errorf("For without parameters = %q, want %q", got, want)
	}
}
