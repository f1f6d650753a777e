package capture

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"
)

// lookasideChildEnv makes the test binary, started by TestDisableLookaside,
// report a capture connection's lookaside use in a process of its own:
// the switch works only before the process's first database is opened.
const lookasideChildEnv = "REPLICATOR_TEST_LOOKASIDE_CHILD"

func TestDisableLookaside(t *testing.T) {
	if mode := os.Getenv(lookasideChildEnv); mode != "" {
		lookasideChild(t, mode == "off")
		return
	}
	for _, tc := range []struct {
		mode    string
		wantUse bool
	}{
		{"on", true},
		{"off", false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDisableLookaside$", "-test.v")
			cmd.Env = append(os.Environ(), lookasideChildEnv+"="+tc.mode)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			_, after, ok := strings.Cut(string(out), "lookaside-high=")
			if !ok {
				t.Fatalf("child printed no result:\n%s", out)
			}
			high, err := strconv.Atoi(strings.Fields(after)[0])
			if err != nil {
				t.Fatal(err)
			}
			if (high > 0) != tc.wantUse {
				t.Fatalf("lookaside slots used at most %d with lookaside %s", high, tc.mode)
			}
		})
	}
}

func lookasideChild(t *testing.T, disable bool) {
	if disable {
		if err := DisableLookaside(); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "db")
	setup, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	if _, err := setup.Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	db, err := openDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n int
	if err := c.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	var high int
	err = c.Raw(func(dc any) error {
		_, high, err = dc.(sqlite.DBStatus).Status(sqlite.DBStatusLookasideUsed, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if DisableLookaside() == nil {
		t.Fatal("DisableLookaside succeeded after a database was opened")
	}
	fmt.Printf("lookaside-high=%d\n", high)
}
