package capture_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shmResident returns how much of the process's mappings of the file at
// path is resident, in KB, and how many mappings there are.
func shmResident(t *testing.T, path string) (kb, mappings int) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if fields := strings.Fields(l); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasSuffix(l, " "+path)
			if in {
				mappings++
			}
			continue
		}
		if in && strings.HasPrefix(l, "Rss:") {
			n, err := strconv.Atoi(strings.Fields(l)[1])
			if err != nil {
				t.Fatal(err)
			}
			kb += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return kb, mappings
}

// TestDropIndexPages checks that an idle capturer can give back the WAL
// index's pages, that capture goes on correctly after they were given
// back, and that a WAL index grown to more mappings is found again.
func TestDropIndexPages(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	db := app(t, path, "busy_timeout(5000)", "wal_autocheckpoint(0)")
	exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(100))")
	c, _ := open(t, path)
	step(t, c)
	shm, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	shm += "-shm"
	if kb, n := shmResident(t, shm); kb == 0 || n != 1 {
		t.Fatalf("before: %d KB resident in %d mappings, want some in 1", kb, n)
	}
	c.DropIndexPages()
	if kb, _ := shmResident(t, shm); kb != 0 {
		t.Fatalf("after the drop: %d KB resident, want 0", kb)
	}

	// Past 4062 frames SQLite maps a second 32 KB of the index.
	for range 5000 {
		exec1(t, db, "INSERT INTO t (v) VALUES (randomblob(100))")
		if t.Failed() {
			return
		}
	}
	step(t, c)
	assertSame(t, c, path)
	if _, n := shmResident(t, shm); n < 2 {
		t.Fatalf("%d mappings of the WAL index after 5,000 frames, want 2 or more", n)
	}
	c.DropIndexPages()
	if kb, _ := shmResident(t, shm); kb != 0 {
		t.Fatalf("after the WAL grew: %d KB resident, want 0", kb)
	}
	exec1(t, db, "UPDATE t SET v = randomblob(50) WHERE id % 7 = 0")
	step(t, c)
	assertSame(t, c, path)

	// After Close the mappings may be gone: nothing is touched.
	c.Close()
	c.DropIndexPages()
}
