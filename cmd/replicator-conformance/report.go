package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/sqlitereplicator/replicator/conformance"
)

// conformanceReport is the result matrix, also its JSON form.
type conformanceReport struct {
	OK       bool                 `json:"ok"`
	Strict   bool                 `json:"strict"`
	Backends []conformanceBackend `json:"backends"`
	// Tests are the leaf names, in the suite's order, across backends.
	Tests []string `json:"tests"`
}

type conformanceBackend struct {
	Name    string                     `json:"name"`
	OK      bool                       `json:"ok"`
	Summary string                     `json:"summary"`
	Counts  map[conformance.Status]int `json:"counts"`
	Results []conformanceResult        `json:"results"`
}

type conformanceResult struct {
	Test    string             `json:"test"`
	Status  conformance.Status `json:"status"`
	Seconds float64            `json:"seconds"`
	Message string             `json:"message,omitempty"`
	Output  []string           `json:"output,omitempty"`
}

// failed reports whether status fails the run.
func failed(st conformance.Status, strict bool) bool {
	return st == conformance.Fail || st == conformance.Error || (strict && st == conformance.Disabled)
}

var statusOrder = []conformance.Status{conformance.Pass, conformance.Fail, conformance.Error, conformance.Disabled, conformance.NotApplicable}

func newConformanceReport(runs []conformanceRun, strict bool) *conformanceReport {
	rep := &conformanceReport{OK: true, Strict: strict}
	seen := map[string]bool{}
	for _, run := range runs {
		b := conformanceBackend{Name: run.spec.Name, OK: true, Counts: map[conformance.Status]int{}}
		for _, r := range run.results {
			b.Counts[r.Status]++
			if failed(r.Status, strict) {
				b.OK = false
			}
			cr := conformanceResult{Test: r.Name, Status: r.Status, Seconds: r.Elapsed.Seconds(), Message: r.Message}
			if r.Status != conformance.Pass {
				cr.Output = r.Output
			}
			b.Results = append(b.Results, cr)
			if !seen[r.Name] {
				seen[r.Name] = true
				rep.Tests = append(rep.Tests, r.Name)
			}
		}
		var parts []string
		for _, st := range statusOrder {
			if n := b.Counts[st]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, st))
			}
		}
		b.Summary = strings.Join(parts, ", ")
		rep.OK = rep.OK && b.OK
		rep.Backends = append(rep.Backends, b)
	}
	return rep
}

// writeText prints the matrix (a row per test, a column per backend), the
// reasons of every test that did not pass, and a summary per backend.
func (rep *conformanceReport) writeText(w io.Writer, verbose bool) error {
	cells := make([]map[string]conformanceResult, len(rep.Backends))
	for i, b := range rep.Backends {
		cells[i] = map[string]conformanceResult{}
		for _, r := range b.Results {
			cells[i][r.Test] = r
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "TEST")
	for _, b := range rep.Backends {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(b.Name))
	}
	fmt.Fprintln(tw)
	for _, test := range rep.Tests {
		fmt.Fprint(tw, test)
		for i := range rep.Backends {
			st := "-"
			if r, ok := cells[i][test]; ok {
				st = string(r.Status)
				if failed(r.Status, rep.Strict) && r.Status == conformance.Disabled {
					st += " (strict)"
				}
			}
			fmt.Fprintf(tw, "\t%s", st)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notes bytes.Buffer
	for _, b := range rep.Backends {
		for _, r := range b.Results {
			if r.Status == conformance.Pass || r.Status == conformance.NotApplicable {
				continue
			}
			if r.Status == conformance.Disabled && !rep.Strict && !verbose {
				continue
			}
			fmt.Fprintf(&notes, "%s %s: %s: %s\n", b.Name, r.Test, r.Status, firstLine(r.Message))
			if verbose {
				for _, l := range r.Output {
					fmt.Fprintf(&notes, "    %s\n", l)
				}
			}
		}
	}
	if notes.Len() > 0 {
		fmt.Fprintln(w)
		if _, err := w.Write(notes.Bytes()); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	for _, b := range rep.Backends {
		verdict := "PASS"
		if !b.OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%s %s: %s\n", verdict, b.Name, b.Summary)
	}
	return nil
}

// JUnit XML, as read by CI systems: a testsuite per backend.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func (rep *conformanceReport) writeJUnit(path string) error {
	var doc junitSuites
	for _, b := range rep.Backends {
		s := junitSuite{Name: "conformance/" + b.Name}
		var total float64
		for _, r := range b.Results {
			total += r.Seconds
			c := junitCase{Name: r.Test, ClassName: "conformance." + b.Name, Time: fmt.Sprintf("%.3f", r.Seconds)}
			p := &junitProblem{Message: firstLine(r.Message), Type: string(r.Status), Text: strings.Join(r.Output, "\n")}
			switch {
			case r.Status == conformance.Fail || (r.Status == conformance.Disabled && rep.Strict):
				c.Failure = p
				s.Failures++
			case r.Status == conformance.Error:
				c.Error = p
				s.Errors++
			case r.Status == conformance.Disabled || r.Status == conformance.NotApplicable:
				c.Skipped = p
				s.Skipped++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		s.Time = fmt.Sprintf("%.3f", total)
		doc.Suites = append(doc.Suites, s)
	}
	data, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	data = append([]byte(xml.Header), append(data, '\n')...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}
