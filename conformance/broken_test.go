package conformance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// A brokenStore is a memstore with one deliberate bug, and the leaf tests
// of the suite that must catch it (paths below the RunStorageTests level).
type brokenStore struct {
	name  string
	caps  *sdk.Capabilities // nil: IfAbsent and IfMatch
	wrap  func(s sdk.Storage) sdk.Storage
	fails []string
}

var brokenStores = []brokenStore{
	{
		name:  "ListInDirectoryOrder",
		wrap:  func(s sdk.Storage) sdk.Storage { return listDirOrder{s} },
		fails: []string{"List/Order"},
	},
	{
		name:  "ListFirstPageOnly",
		wrap:  func(s sdk.Storage) sdk.Storage { return listFirstPage{s} },
		fails: []string{"List/Pagination"},
	},
	{
		name:  "ListStartAfterInclusive",
		wrap:  func(s sdk.Storage) sdk.Storage { return listInclusive{s} },
		fails: []string{"List/StartAfter", "List/PrefixAndStartAfter", "List/Pagination"},
	},
	{
		name:  "ListPrefixAsDirectory",
		wrap:  func(s sdk.Storage) sdk.Storage { return listPrefixDir{s} },
		fails: []string{"List/Prefix"},
	},
	{
		name:  "ListIgnoresCallbackError",
		wrap:  func(s sdk.Storage) sdk.Storage { return listNoStop{s} },
		fails: []string{"List/StopOnError"},
	},
	{
		name:  "GetPastEOFErrors",
		wrap:  func(s sdk.Storage) sdk.Storage { return getStrictRange{s} },
		fails: []string{"Range/PastEOF", "Range/AtEOF", "Range/BeyondEOF", "Range/EmptyObject"},
	},
	{
		name:  "GetNotFoundOnRead",
		wrap:  func(s sdk.Storage) sdk.Storage { return getLazy{s} },
		fails: []string{"NotFound/Get", "NotFound/GetRange"},
	},
	{
		name:  "GetReadsInChunks",
		wrap:  func(s sdk.Storage) sdk.Storage { return getChunked{s} },
		fails: []string{"Atomic/ReadDuringOverwrite"},
	},
	{
		name:  "StatFindsDirectory",
		wrap:  func(s sdk.Storage) sdk.Storage { return statDir{s} },
		fails: []string{"NotFound/ParentOfKey"},
	},
	{
		name:  "ETagPerKey",
		caps:  &sdk.Capabilities{IfAbsent: true},
		wrap:  func(s sdk.Storage) sdk.Storage { return etagPerKey{s} },
		fails: []string{"Stat/ETagChangesOnOverwrite"},
	},
	{
		name:  "PutNotAtomic",
		wrap:  func(s sdk.Storage) sdk.Storage { return putInPlace{s} },
		fails: []string{"Atomic/ReaderErrorNew", "Atomic/ReaderErrorOverwrite", "Atomic/CancelledNew", "Atomic/CancelledOverwrite"},
	},
	{
		name:  "PutIgnoresCancel",
		wrap:  func(s sdk.Storage) sdk.Storage { return putNoCancel{s} },
		fails: []string{"Atomic/CancelledNew", "Atomic/CancelledOverwrite"},
	},
	{
		name:  "PutTakesUnexpectedEOFForEnd",
		wrap:  func(s sdk.Storage) sdk.Storage { return putShortOK{s} },
		fails: []string{"Atomic/ReaderUnexpectedEOFNew", "Atomic/ReaderUnexpectedEOFOverwrite"},
	},
	{
		name:  "PutCleansKeys",
		wrap:  func(s sdk.Storage) sdk.Storage { return putCleanKey{s} },
		fails: []string{"Keys/Invalid/DotDot", "Keys/Invalid/Dot", "Keys/Invalid/Absolute", "Keys/Invalid/EmptySegment", "Keys/Invalid/TrailingSlash"},
	},
	{
		name:  "ConditionsIgnored",
		wrap:  func(s sdk.Storage) sdk.Storage { return putDropConditions{s} },
		fails: []string{"Conditional/IfAbsent/Exists", "Conditional/IfAbsent/Concurrent", "Conditional/IfMatch/Stale", "Conditional/IfMatch/Missing", "Conditional/IfMatch/Concurrent"},
	},
	{
		name:  "IfAbsentCheckThenPut",
		wrap:  func(s sdk.Storage) sdk.Storage { return putRacyIfAbsent{s} },
		fails: []string{"Conditional/IfAbsent/Concurrent"},
	},
	{
		name:  "UndeclaredConditionsIgnored",
		caps:  &sdk.Capabilities{},
		wrap:  func(s sdk.Storage) sdk.Storage { return putDropConditions{s} },
		fails: []string{"Conditional/IfAbsent/RejectedIfUndeclared", "Conditional/IfMatch/RejectedIfUndeclared"},
	},
	{
		name:  "DeleteMissingIsNotFound",
		wrap:  func(s sdk.Storage) sdk.Storage { return deleteStrict{s} },
		fails: []string{"Delete/Missing", "Delete/Twice", "Delete/Batch"},
	},
	{
		name:  "DeleteRecursive",
		wrap:  func(s sdk.Storage) sdk.Storage { return deleteRecursive{s} },
		fails: []string{"Delete/OnlyExactKey"},
	},
	{
		name:  "DeleteFirstThousandOnly",
		wrap:  func(s sdk.Storage) sdk.Storage { return deleteTruncated{s} },
		fails: []string{"Delete/Batch"},
	},
}

// brokenEnv names the broken store TestBrokenStoreSuite runs against.
const brokenEnv = "CONFORMANCE_BROKEN_STORE"

// healthyNoCaps is the brokenEnv value for a correct memstore without
// capabilities, which shows how disabled tests are reported.
const healthyNoCaps = "HealthyWithoutCapabilities"

// TestBrokenStoreSuite runs the suite against the store named by brokenEnv.
// TestSuiteCatchesBugs runs it in a child process; it skips otherwise.
func TestBrokenStoreSuite(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("run by TestSuiteCatchesBugs with " + brokenEnv + " set")
	}
	b := brokenStore{name: healthyNoCaps, caps: &sdk.Capabilities{}, wrap: func(s sdk.Storage) sdk.Storage { return s }}
	if name != healthyNoCaps {
		i := slices.IndexFunc(brokenStores, func(b brokenStore) bool { return b.name == name })
		if i < 0 {
			t.Fatalf("no broken store %q", name)
		}
		b = brokenStores[i]
	}
	var opts []memstore.Option
	if b.caps != nil {
		opts = append(opts, memstore.WithCapabilities(*b.caps))
	}
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
		return b.wrap(memstore.New(opts...)), nil
	}))
}

// TestSuiteCatchesBugs runs the suite against each broken store, in a child
// process so that the failures do not fail this test, and checks that the
// tests meant to catch the bug failed.
func TestSuiteCatchesBugs(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	for _, b := range brokenStores {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			res := runChild(t, b.name, b.fails)
			if res.err == nil {
				t.Errorf("suite passed against broken store %s; want failures\n%s", b.name, res.tail())
			}
			for _, f := range b.fails {
				if got := res.status[f]; got != "FAIL" {
					t.Errorf("%s: got %q, want FAIL\n%s", f, got, res.tail())
				}
			}
		})
	}
}

// TestDisabledAreReported checks how a store without capabilities shows in
// the results: the conditional tests skipped with a "disabled:" message,
// and the refusal of undeclared conditions tested and passed.
func TestDisabledAreReported(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	disabled := map[string][]string{
		"IfAbsent": {"Missing", "Exists", "AfterDelete", "Concurrent"},
		"IfMatch":  {"Current", "Stale", "Missing", "Deleted", "Concurrent"},
	}
	var leaves []string
	for capability, names := range disabled {
		for _, l := range append(names, "RejectedIfUndeclared") {
			leaves = append(leaves, "Conditional/"+capability+"/"+l)
		}
	}
	res := runChild(t, healthyNoCaps, leaves)
	if res.err != nil {
		t.Fatalf("suite failed against a healthy memstore: %v\n%s", res.err, res.tail())
	}
	for capability, leaves := range disabled {
		for _, l := range leaves {
			name := "Conditional/" + capability + "/" + l
			want := "disabled: store does not declare capability " + capability
			if res.status[name] != "SKIP" || !slices.ContainsFunc(res.logs[name], func(s string) bool { return strings.HasSuffix(s, ": "+want) }) {
				t.Errorf("%s: got %s with log %q; want SKIP with %q", name, res.status[name], res.logs[name], want)
			}
		}
		name := "Conditional/" + capability + "/RejectedIfUndeclared"
		if res.status[name] != "PASS" {
			t.Errorf("%s: got %q, want PASS", name, res.status[name])
		}
	}
}

// childResult is the outcome of the suite run in a child process, by leaf
// path below TestBrokenStoreSuite.
type childResult struct {
	err    error
	out    []byte
	status map[string]string   // PASS, FAIL or SKIP
	logs   map[string][]string // what the test logged
}

func (r *childResult) tail() string {
	const max = 4000
	if len(r.out) > max {
		return "...\n" + string(r.out[len(r.out)-max:])
	}
	return string(r.out)
}

var (
	eventLine  = regexp.MustCompile(`^=== (?:RUN|NAME|CONT) +(\S+)`)
	resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
)

// runChild runs the leaves of TestBrokenStoreSuite against the store called
// name in a child process.
func runChild(t *testing.T, name string, leaves []string) *childResult {
	t.Helper()
	// Run only those leaves, or a few more: -test.run matches each level
	// of a test's name against one part of the pattern.
	var levels [][]string
	for _, l := range leaves {
		for d, name := range strings.Split(l, "/") {
			if d == len(levels) {
				levels = append(levels, nil)
			}
			if name = regexp.QuoteMeta(name); !slices.Contains(levels[d], name) {
				levels[d] = append(levels[d], name)
			}
		}
	}
	run := "^TestBrokenStoreSuite$"
	for _, names := range levels {
		run += "/^(" + strings.Join(names, "|") + ")$"
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run="+run, "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), brokenEnv+"="+name)
	out, err := cmd.CombinedOutput()
	res := &childResult{err: err, out: out, status: map[string]string{}, logs: map[string][]string{}}
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatalf("running %s: %v", cmd, err)
	}
	const root = "TestBrokenStoreSuite/"
	cur := ""
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if m := eventLine.FindStringSubmatch(line); m != nil {
			cur = strings.TrimPrefix(m[1], root)
		} else if m := resultLine.FindStringSubmatch(line); m != nil {
			res.status[strings.TrimPrefix(m[2], root)] = m[1]
		} else if strings.HasPrefix(line, "    ") {
			res.logs[cur] = append(res.logs[cur], strings.TrimSpace(line))
		}
	}
	if len(res.status) == 0 {
		t.Fatalf("no test results from %s:\n%s", cmd, res.tail())
	}
	return res
}
