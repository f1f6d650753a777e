package conformance

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Running the suite outside "go test".
//
// RunStorageTests needs a real *testing.T, and only the testing package's
// own main loop makes one. A program (such as "replicator conformance")
// therefore runs the suite in a child process: the child calls RunMain,
// which runs the suite through testing.Main with -test.v=test2json output
// on its stdout, and the parent reads that output with ParseOutput into
// one Result per leaf test. The framing lines of that output mode start
// with a ^V byte, so nothing a store or the suite logs can be mistaken for
// a result.

// RootTest is the name of the top-level test of the storage layer; the
// names of its results are relative to it ("PutGet/RoundTrip").
const RootTest = "Storage"

// ScenarioRoot is the name of the top-level test of the replication
// scenarios; their results keep it as a prefix ("Replication/Basic"), so
// both layers line up in one matrix without clashing.
const ScenarioRoot = "Replication"

// Status is the outcome of one leaf test.
type Status string

// The statuses of a leaf test.
const (
	// Pass: the store keeps this part of the contract.
	Pass Status = "pass"
	// Fail: the store breaks the contract.
	Fail Status = "fail"
	// Error: the test could not run: the harness failed to make a store,
	// the run crashed or timed out, or the test skipped for a reason the
	// suite does not define.
	Error Status = "error"
	// Disabled: the store does not declare a capability the test needs
	// (the suite skipped it with a "disabled:" message).
	Disabled Status = "disabled"
	// NotApplicable: the check does not apply to what the store declares
	// (skipped with "not applicable:"), such as the refusal of an
	// undeclared condition on a store that declares it.
	NotApplicable Status = "n/a"
)

// Result is the outcome of one leaf test.
type Result struct {
	// Name is the leaf's path below RootTest, such as "PutGet/Small".
	Name    string
	Status  Status
	Elapsed time.Duration
	// Message is the first line the test logged (its first failure, or
	// its skip reason), without the file:line prefix.
	Message string
	// Output is everything the test logged.
	Output []string
}

// RunMain runs RunStorageTests against h as the whole of the current
// process and exits: with status 0 when every test passed or skipped, 1
// otherwise. It replaces os.Args, so call it from a child process's main
// before anything else parses flags. run, when not empty, selects tests
// like "go test -run" does, relative to RootTest ("PutGet", "Keys/Awkward");
// timeout bounds the whole run (0 means no limit).
func RunMain(h Harness, run string, timeout time.Duration) {
	RunLayersMain(h, nil, run, timeout)
}

// RunLayersMain is RunMain for both layers: the storage tests against h
// (when not nil) and the replication scenarios against sh (when not nil),
// as the top-level tests RootTest and ScenarioRoot. run selects tests
// below either ("PutGet", "Basic", "Kill9").
func RunLayersMain(h Harness, sh ScenarioHarness, run string, timeout time.Duration) {
	args := []string{os.Args[0], "-test.v=test2json", "-test.count=1", "-test.timeout=" + timeout.String(),
		// Scenarios mostly wait on the daemon; let a few overlap.
		"-test.parallel=4"}
	if run != "" {
		// go test -run splits a pattern into alternatives at a "|"
		// outside brackets; each alternative gets the layers' prefix.
		var alts []string
		for _, alt := range splitAlternatives(run) {
			alts = append(alts, "^("+RootTest+"|"+ScenarioRoot+")$/"+alt)
		}
		args = append(args, "-test.run="+strings.Join(alts, "|"))
	}
	os.Args = args
	var tests []testing.InternalTest
	if h != nil {
		tests = append(tests, testing.InternalTest{Name: RootTest, F: func(t *testing.T) { RunStorageTests(t, h) }})
	}
	if sh != nil {
		tests = append(tests, testing.InternalTest{Name: ScenarioRoot, F: func(t *testing.T) { RunScenarios(t, sh) }})
	}
	testing.Main(func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) }, tests, nil, nil)
}

// splitAlternatives splits a -run pattern at every "|" outside
// parentheses and brackets, as the testing package does.
func splitAlternatives(pat string) []string {
	var (
		alts  []string
		depth int
		start int
	)
	for i := 0; i < len(pat); i++ {
		switch pat[i] {
		case '\\':
			i++
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case '|':
			if depth == 0 {
				alts = append(alts, pat[start:i])
				start = i + 1
			}
		}
	}
	return append(alts, pat[start:])
}

const marker = "\x16" // frames the lines of -test.v=test2json output

var (
	frameEvent  = regexp.MustCompile(`^=== (RUN|NAME|CONT|PAUSE) +(\S+)`)
	frameResult = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)
	logPrefix   = regexp.MustCompile(`^[^\s:]+\.go:\d+: `)
)

// ParseOutput reads the output of a process running RunMain and returns a
// Result for every leaf test, in the order they ended, calling fn (when
// not nil) with each as soon as it ends. Tests that started but never
// ended (the process crashed or timed out) are reported as Error, with
// the unframed output that followed them as their Output.
func ParseOutput(r io.Reader, fn func(Result)) ([]Result, error) {
	var (
		results  []Result
		started  []string            // names, in order of their first RUN
		ended    = map[string]bool{} // names that ended
		parents  = map[string]bool{} // names that have subtests
		logs     = map[string][]string{}
		cur      string   // the test unframed output belongs to
		trailing []string // output after the last test named itself
	)
	rel := func(name string) string { return strings.TrimPrefix(name, RootTest+"/") }
	// A layer's top-level test is never a leaf, even when -run left it
	// without subtests.
	root := func(name string) bool { return name == RootTest || name == ScenarioRoot }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		framed := strings.TrimLeft(line, " ")
		if strings.HasPrefix(framed, marker) {
			framed = strings.TrimLeft(framed[len(marker):], " ")
			if m := frameEvent.FindStringSubmatch(framed); m != nil {
				cur, trailing = m[2], nil
				if m[1] == "RUN" {
					started = append(started, cur)
					if i := strings.LastIndexByte(cur, '/'); i >= 0 {
						parents[cur[:i]] = true
					}
				}
				continue
			}
			if m := frameResult.FindStringSubmatch(framed); m != nil {
				name := m[2]
				ended[name] = true
				if parents[name] || root(name) {
					continue
				}
				secs, _ := time.ParseDuration(m[3] + "s")
				res := classify(rel(name), m[1], logs[name])
				res.Elapsed = secs
				results = append(results, res)
				if fn != nil {
					fn(res)
				}
				continue
			}
			// Other framed lines (PASS, FAIL, ok) end the run.
			cur = ""
			continue
		}
		if cur != "" && strings.HasPrefix(line, "    ") {
			logs[cur] = append(logs[cur], strings.TrimPrefix(line, "    "))
		} else if strings.TrimSpace(line) != "" {
			trailing = append(trailing, line)
		}
	}
	for _, name := range started {
		if ended[name] || parents[name] || root(name) {
			continue
		}
		out := append(logs[name], trailing...)
		res := Result{Name: rel(name), Status: Error, Message: "the test did not finish: the run crashed or timed out", Output: out}
		for _, l := range out {
			if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "panic: test timed out") {
				res.Message = "the test did not finish: " + l
				break
			}
		}
		results = append(results, res)
		if fn != nil {
			fn(res)
		}
	}
	return results, sc.Err()
}

// classify turns a leaf's verdict and log into a Result.
func classify(name, verdict string, log []string) Result {
	res := Result{Name: name, Output: log}
	for _, l := range log {
		if logPrefix.MatchString(l) {
			res.Message = logPrefix.ReplaceAllString(l, "")
			break
		}
	}
	if res.Message == "" && len(log) > 0 {
		res.Message = strings.TrimSpace(log[0])
	}
	switch verdict {
	case "PASS":
		res.Status = Pass
	case "FAIL":
		res.Status = Fail
		for _, l := range log {
			if strings.HasPrefix(logPrefix.ReplaceAllString(l, ""), "harness:") {
				res.Status, res.Message = Error, logPrefix.ReplaceAllString(l, "")
				break
			}
		}
	case "SKIP":
		switch {
		case strings.HasPrefix(res.Message, "disabled:"):
			res.Status = Disabled
		case strings.HasPrefix(res.Message, "not applicable:"):
			res.Status = NotApplicable
		default:
			res.Status = Error
			res.Message = fmt.Sprintf("skipped without a reason the suite defines: %q", res.Message)
		}
	}
	return res
}
