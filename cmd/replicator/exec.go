package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

// exitError makes run exit with code instead of exitFailure. err, when
// not nil, is printed like any command error.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func (e exitError) Unwrap() error { return e.err }

// exitWith reports err (which holds an exitError) for command name and
// returns the exit code it carries.
func exitWith(stderr io.Writer, name string, err error) int {
	var ee exitError
	if !errors.As(err, &ee) {
		return exitFailure
	}
	if ee.err != nil {
		fmt.Fprintf(stderr, "replicator %s: %v\n", name, err)
	}
	return ee.code
}

// startExec starts the application of "replicate -exec" once replication
// is open. The returned context, which the replication runs under, is
// cancelled when the application exits (not on SIGINT/SIGTERM/SIGHUP,
// which are forwarded to the application), so its last writes get the
// final sync. finish takes replication's result and returns the command's:
// the application's exit status, or replication's error (exitFailure).
//
// When the application cannot be started, the context is already
// cancelled (replication shuts down cleanly) and finish returns why.
// With an empty cmdline, startExec returns ctx and a finish that returns
// its argument.
func startExec(ctx context.Context, e *env, cmdline string) (context.Context, func(error) error) {
	if cmdline == "" {
		return ctx, func(err error) error { return err }
	}
	failed := func(err error) (context.Context, func(error) error) {
		c, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancel()
		return c, func(repErr error) error { return errors.Join(err, repErr) }
	}
	argv, err := splitWords(cmdline)
	if err != nil {
		return failed(usagef("-exec: %v", err))
	}
	if len(argv) == 0 {
		return failed(usagef("-exec: empty command"))
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	// Writers other than files (tests) are not safe for the log's
	// concurrent writes: hold the application's output until it exits.
	var held []func()
	for _, w := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
		if _, ok := (*w).(*os.File); !ok {
			buf, to := new(bytes.Buffer), *w
			*w = buf
			held = append(held, func() { _, _ = to.Write(buf.Bytes()) })
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		return failed(fmt.Errorf("-exec: start %s: %w", argv[0], err))
	}
	e.log.Info("started application", "cmd", cmdline, "pid", cmd.Process.Pid)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
		cancel()
	}()
	go func() {
		for {
			select {
			case s := <-sigs:
				e.log.Info("forwarding signal to the application", "signal", s)
				_ = cmd.Process.Signal(s)
			case <-exited:
				return
			}
		}
	}()
	finish := func(repErr error) error {
		defer signal.Stop(sigs)
		select {
		case <-exited:
		default:
			// Replication stopped on its own (an error): stop the
			// application too rather than let it write unreplicated.
			e.log.Error("replication stopped; stopping the application", "err", repErr)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
		for _, f := range held {
			f()
		}
		code := exitCode(cmd.ProcessState, waitErr)
		e.log.Info("application exited", "code", code)
		if repErr != nil {
			return repErr
		}
		if code != 0 {
			return exitError{code: code}
		}
		return nil
	}
	return runCtx, finish
}

// exitCode is the exit status of a finished child, 128+N when signal N
// killed it (as shells report it).
func exitCode(ps *os.ProcessState, waitErr error) int {
	if ps == nil {
		if waitErr != nil {
			return exitFailure
		}
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if c := ps.ExitCode(); c >= 0 {
		return c
	}
	return exitFailure
}

// splitWords splits a command line as a POSIX shell would split words:
// blanks separate words; '...' quotes literally; "..." quotes with \ escaping
// \ " $ and `; a \ outside quotes escapes the next character. There is no
// expansion of any kind.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New("unterminated double quote")
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
