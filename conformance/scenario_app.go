package conformance

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the application's SQLite
)

// app is the application of a scenario: a connection to the source
// database in WAL mode that commits rows (id 1, 2, 3, ... one row per
// transaction, with padding of varying size) as a real application would,
// with a busy timeout because the daemon takes the write lock briefly.
type app struct {
	s  *scen
	db *sql.DB
}

func (s *scen) openApp(path string) *app {
	s.t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		s.t.Fatalf("harness: open the application's database: %v", err)
	}
	db.SetMaxOpenConns(1)
	return &app{s: s, db: db}
}

func (a *app) close() {
	if err := a.db.Close(); err != nil {
		a.s.t.Errorf("close the application's database: %v", err)
	}
}

func (a *app) exec(query string, args ...any) {
	a.s.t.Helper()
	if _, err := a.db.Exec(query, args...); err != nil {
		a.s.t.Fatalf("application: %s: %v", query, err)
	}
}

// insert commits n rows, one per transaction.
func (a *app) insert(n int) {
	a.s.t.Helper()
	for range n {
		if err := a.insertOne(); err != nil {
			a.s.t.Fatal(err)
		}
	}
}

func (a *app) insertOne() error {
	if _, err := a.db.Exec("INSERT INTO rows (n, pad) SELECT coalesce(max(n), 0) + 1, randomblob(?) FROM rows", 50+rand.IntN(1500)); err != nil {
		return fmt.Errorf("application: insert: %w", err)
	}
	return nil
}

// writeInBackground commits rows until the returned stop is called; stop
// returns the first error the writer met.
func (a *app) writeInBackground() (stop func() error) {
	done := make(chan struct{})
	var (
		wg  sync.WaitGroup
		err error
	)
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if err = a.insertOne(); err != nil {
				return
			}
			time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond)
		}
	})
	var once sync.Once
	return func() error {
		once.Do(func() { close(done) })
		wg.Wait()
		return err
	}
}

// content is what a database holds, summarised for comparison.
type content struct {
	Rows  int    // number of rows
	MaxN  int    // largest counter
	Hash  string // sha256 over the schema and every row
	Valid bool   // integrity_check said ok
}

// contentOf reads the database at path, read-only.
func (s *scen) contentOf(path string) content {
	s.t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		s.t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var c content
	var ok string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil {
		s.t.Fatalf("integrity_check of %s: %v", path, err)
	}
	c.Valid = ok == "ok"
	h := sha256.New()
	schema, err := db.Query("SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
	if err != nil {
		s.t.Fatalf("read the schema of %s: %v", path, err)
	}
	for schema.Next() {
		var typ, name, sqlText string
		if err := schema.Scan(&typ, &name, &sqlText); err != nil {
			s.t.Fatalf("read the schema of %s: %v", path, err)
		}
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", typ, name, sqlText)
	}
	schema.Close()
	rows, err := db.Query("SELECT id, n, pad FROM rows ORDER BY id")
	if err != nil {
		s.t.Fatalf("read the rows of %s: %v", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, n int
		var pad []byte
		if err := rows.Scan(&id, &n, &pad); err != nil {
			s.t.Fatalf("read the rows of %s: %v", path, err)
		}
		fmt.Fprintf(h, "%d\x00%d\x00%d\x00", id, n, len(pad))
		h.Write(pad)
		c.Rows++
		c.MaxN = max(c.MaxN, n)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read the rows of %s: %v", path, err)
	}
	c.Hash = hex.EncodeToString(h.Sum(nil))
	return c
}

// wantSame checks that the restored database holds exactly what want
// describes.
func (s *scen) wantSame(r restored, want content, what string) {
	s.t.Helper()
	got := s.contentOf(r.Path)
	switch {
	case !got.Valid:
		s.t.Fatalf("%s: restored database (generation %s, txid %d) fails integrity_check", what, r.Generation, r.TxID)
	case got.Hash != want.Hash:
		s.t.Fatalf("%s: restored database (generation %s, txid %d) has %d rows up to n=%d, want %d rows up to n=%d (content differs)",
			what, r.Generation, r.TxID, got.Rows, got.MaxN, want.Rows, want.MaxN)
	}
}

// wantPrefix checks that the restored database is a committed prefix of
// the application's writes: rows 1..k, none missing.
func (s *scen) wantPrefix(r restored, what string) content {
	s.t.Helper()
	got := s.contentOf(r.Path)
	if !got.Valid {
		s.t.Fatalf("%s: restored database (txid %d) fails integrity_check", what, r.TxID)
	}
	if got.Rows != got.MaxN {
		s.t.Fatalf("%s: restored database (txid %d) has %d rows but counter %d: a hole, not a committed prefix", what, r.TxID, got.Rows, got.MaxN)
	}
	return got
}
