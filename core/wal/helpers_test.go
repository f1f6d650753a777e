package wal

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// walBuilder writes WAL images with this package's own encoder. It is how
// tests make logs SQLite on this host never writes (big-endian checksums,
// arbitrary frame sequences) and how they re-encode real SQLite logs.
type walBuilder struct {
	h      Header
	buf    []byte
	s1, s2 uint32
	txns   []goldenTxn // transactions written by txn, in order
}

func newWALBuilder(h Header) *walBuilder {
	return &walBuilder{h: h, buf: h.Encode(), s1: h.Checksum1, s2: h.Checksum2}
}

// frame appends a valid frame continuing the checksum chain.
func (w *walBuilder) frame(pgno, commit uint32, page []byte) {
	if len(page) != int(w.h.PageSize) {
		panic(fmt.Sprintf("page of %d bytes for page size %d", len(page), w.h.PageSize))
	}
	var fh [FrameHeaderSize]byte
	be := binary.BigEndian
	be.PutUint32(fh[0:], pgno)
	be.PutUint32(fh[4:], commit)
	be.PutUint32(fh[8:], w.h.Salt1)
	be.PutUint32(fh[12:], w.h.Salt2)
	w.s1, w.s2 = Checksum(w.h.BigEndian(), w.s1, w.s2, fh[:8])
	w.s1, w.s2 = Checksum(w.h.BigEndian(), w.s1, w.s2, page)
	be.PutUint32(fh[16:], w.s1)
	be.PutUint32(fh[20:], w.s2)
	w.buf = append(w.buf, fh[:]...)
	w.buf = append(w.buf, page...)
}

// txn appends one transaction writing pgnos in order (each page filled with
// a byte derived from its page number and seed) and committing at dbSize.
func (w *walBuilder) txn(dbSize uint32, seed byte, pgnos ...uint32) {
	for i, p := range pgnos {
		var commit uint32
		if i == len(pgnos)-1 {
			commit = dbSize
		}
		w.frame(p, commit, fillPage(int(w.h.PageSize), byte(p)+seed))
	}
	w.txns = append(w.txns, goldenTxn{pgnos: pgnos, dbSize: dbSize, end: int64(len(w.buf))})
}

func (w *walBuilder) bytes() []byte { return bytes.Clone(w.buf) }

func fillPage(size int, b byte) []byte { return bytes.Repeat([]byte{b}, size) }

// reencode rewrites the committed part of a WAL image with the given
// checksum byte order, keeping every other header field and every frame.
func reencode(t testing.TB, src []byte, bigEndian bool) []byte {
	t.Helper()
	h, err := ParseHeader(src)
	if err != nil {
		t.Fatalf("reencode: %v", err)
	}
	r := bytes.NewReader(src)
	w := newWALBuilder(NewHeader(bigEndian, h.PageSize, h.CheckpointSeq, h.Salt1, h.Salt2))
	_, err = Scan(r, h, HeaderPosition(h), func(txn Txn) error {
		for _, f := range txn.Frames {
			page, err := ReadPage(r, h, f)
			if err != nil {
				return err
			}
			w.frame(f.Pgno, f.Commit, page)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reencode: %v", err)
	}
	return w.bytes()
}

// scanAll scans b from the header and returns its committed transactions.
func scanAll(t testing.TB, b []byte) (Header, []Txn, Position) {
	t.Helper()
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatalf("parsing header: %v", err)
	}
	var txns []Txn
	pos, err := Scan(bytes.NewReader(b), h, HeaderPosition(h), func(txn Txn) error {
		txns = append(txns, txn)
		return nil
	})
	if err != nil {
		t.Fatalf("scanning: %v", err)
	}
	return h, txns, pos
}

// countingReader is an in-memory io.ReaderAt that records how it is used,
// so tests can assert that Scan reads in bounded chunks.
type countingReader struct {
	b       []byte
	mu      sync.Mutex
	calls   int
	maxRead int
}

func (r *countingReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.calls++
	r.maxRead = max(r.maxRead, len(p))
	r.mu.Unlock()
	return bytes.NewReader(r.b).ReadAt(p, off)
}

// failingReader serves b but fails every read that reaches failAt or beyond.
type failingReader struct {
	b      []byte
	failAt int64
	err    error
}

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.failAt {
		return 0, r.err
	}
	return bytes.NewReader(r.b).ReadAt(p, off)
}

var _ io.ReaderAt = (*countingReader)(nil)

// liveDB is a real SQLite database in WAL mode with automatic checkpoints
// off, held open on a single connection so its -wal file stays in place.
type liveDB struct {
	t    testing.TB
	db   *sql.DB
	path string
}

// openLiveDB creates a database with the given page size (and extra pragmas
// run before anything is written, such as auto_vacuum), creates table t, and
// truncates the WAL so the log starts empty with the database file holding
// the schema.
func openLiveDB(t testing.TB, dir string, pageSize int, pragmas ...string) *liveDB {
	t.Helper()
	path := filepath.Join(dir, "test.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatalf("opening sqlite: %v", err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	d := &liveDB{t: t, db: db, path: path}
	d.exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize))
	for _, p := range pragmas {
		d.exec(p)
	}
	d.exec("PRAGMA journal_mode=WAL")
	d.exec("PRAGMA wal_autocheckpoint=0")
	d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	d.exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return d
}

func (d *liveDB) exec(q string, args ...any) {
	d.t.Helper()
	if _, err := d.db.Exec(q, args...); err != nil {
		d.t.Fatalf("%s: %v", q, err)
	}
}

// inTxn runs the statements in one explicit transaction.
func (d *liveDB) inTxn(stmts ...string) {
	d.t.Helper()
	tx, err := d.db.Begin()
	if err != nil {
		d.t.Fatalf("begin: %v", err)
	}
	for _, q := range stmts {
		if _, err := tx.Exec(q); err != nil {
			d.t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		d.t.Fatalf("commit: %v", err)
	}
}

func (d *liveDB) pageCount() uint32 {
	d.t.Helper()
	var n uint32
	if err := d.db.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
		d.t.Fatalf("page_count: %v", err)
	}
	return n
}

func (d *liveDB) wal() []byte {
	d.t.Helper()
	b, err := os.ReadFile(d.path + "-wal")
	if err != nil {
		d.t.Fatalf("reading wal: %v", err)
	}
	return b
}

func (d *liveDB) dbFile() []byte {
	d.t.Helper()
	b, err := os.ReadFile(d.path)
	if err != nil {
		d.t.Fatalf("reading database: %v", err)
	}
	return b
}

// countRows opens a database file plus WAL image in a fresh directory with
// SQLite (which recovers the WAL from scratch, as after a crash) and returns
// how many rows of table t it sees.
func countRows(t testing.TB, dbFile, walFile []byte) int {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(path, dbFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", walFile, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatalf("opening copy: %v", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("counting rows of copy: %v", err)
	}
	return n
}

var errInjected = errors.New("injected I/O error")
