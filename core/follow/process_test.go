package follow

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as a reader process: with
// FOLLOW_TEST_READER=path it checks the accounts invariant on path until
// its stdin is closed, then prints "reads R checks C violations V" and
// the first violations. With FOLLOW_TEST_WRITER=path,accounts,duration it
// is an application writer process of the primary.
func TestMain(m *testing.M) {
	if path := os.Getenv("FOLLOW_TEST_READER"); path != "" {
		os.Exit(readerProcess(path))
	}
	if w := os.Getenv("FOLLOW_TEST_WRITER"); w != "" {
		os.Exit(writerProcess(w))
	}
	os.Exit(m.Run())
}

func writerProcess(arg string) int {
	var path string
	var n int
	var d time.Duration
	parts := strings.Split(arg, ",")
	if len(parts) != 3 {
		fmt.Println("FOLLOW_TEST_WRITER: want path,accounts,duration")
		return 2
	}
	path = parts[0]
	if _, err := fmt.Sscan(parts[1], &n); err != nil {
		fmt.Println("accounts:", err)
		return 2
	}
	d, err := time.ParseDuration(parts[2])
	if err != nil {
		fmt.Println("duration:", err)
		return 2
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	count, err := transfers(ctx, db, n)
	if err != nil {
		fmt.Println("transfer:", err)
		return 1
	}
	fmt.Printf("transfers %d\n", count)
	return 0
}

// writerProcs are application writer processes of the primary.
type writerProcs struct {
	cmds []*exec.Cmd
	outs []*strings.Builder
}

func startWriterProcesses(t *testing.T, path string, accounts int, d time.Duration, n int) *writerProcs {
	t.Helper()
	wp := &writerProcs{}
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("FOLLOW_TEST_WRITER=%s,%d,%s", path, accounts, d))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wp.cmds, wp.outs = append(wp.cmds, cmd), append(wp.outs, out)
	}
	return wp
}

// finish waits for the writers and returns how many transfers they made.
func (wp *writerProcs) finish(t *testing.T) int {
	t.Helper()
	total := 0
	for i, cmd := range wp.cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process %d: %v: %s", i, err, wp.outs[i].String())
			continue
		}
		var c int
		if _, err := fmt.Sscanf(wp.outs[i].String(), "transfers %d", &c); err != nil {
			t.Errorf("writer process %d: %q", i, wp.outs[i].String())
		}
		total += c
	}
	return total
}

func readerProcess(path string) int {
	ctx, stop := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); stop() }()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	db.SetMaxOpenConns(1)
	var reads, checks, violations int
	var first []string
	bad := func(err error) {
		violations++
		if len(first) < 5 {
			first = append(first, err.Error())
		}
	}
	for k := 0; ctx.Err() == nil; k++ {
		var sum, count int64
		if err := db.QueryRow("SELECT coalesce(sum(balance), 0), count(*) FROM accounts").Scan(&sum, &count); err != nil {
			bad(fmt.Errorf("read: %w", err))
			continue
		}
		reads++
		time.Sleep(200 * time.Microsecond) // leave the 2-CPU machines some room for the writer
		if count == 0 || sum != count*balance {
			bad(fmt.Errorf("torn read: %d accounts hold %d", count, sum))
		}
		if k%20 == 0 {
			var res string
			if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
				bad(fmt.Errorf("integrity_check: %q %v", res, err))
			}
			checks++
		}
	}
	fmt.Printf("reads %d checks %d violations %d\n", reads, checks, violations)
	for _, s := range first {
		fmt.Println(s)
	}
	return 0
}

// readerProcs are reader processes (this test binary re-executed).
type readerProcs struct {
	cmds []*exec.Cmd
	ins  []io.WriteCloser
	outs []*strings.Builder
}

func startReaderProcesses(t *testing.T, path string, n int) *readerProcs {
	t.Helper()
	rp := &readerProcs{}
	for i := 0; i < n; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FOLLOW_TEST_READER="+path)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rp.cmds, rp.ins, rp.outs = append(rp.cmds, cmd), append(rp.ins, in), append(rp.outs, out)
	}
	return rp
}

func (rp *readerProcs) finish(t *testing.T) {
	t.Helper()
	for i, cmd := range rp.cmds {
		rp.ins[i].Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("reader process %d: %v: %s", i, err, rp.outs[i].String())
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(rp.outs[i].String()))
		var reads, checks, violations int
		found := false
		for sc.Scan() {
			if _, err := fmt.Sscanf(sc.Text(), "reads %d checks %d violations %d", &reads, &checks, &violations); err == nil {
				found = true
			} else if found {
				t.Errorf("reader process %d: %s", i, sc.Text())
			}
		}
		if !found || violations != 0 || reads < 10 {
			t.Errorf("reader process %d: %d reads, %d violations; output:\n%s", i, reads, violations, rp.outs[i].String())
		}
		t.Logf("reader process %d: %d reads, %d integrity checks, %d violations", i, reads, checks, violations)
	}
}
