// Package proc starts and waits for child processes when bcvk-inner is
// PID 1. A PID 1 must reap every orphan with wait4(-1), and that would steal
// the exit status of children that os/exec waits for. So this table owns all
// waiting: children are started through it, one reaper collects every exit,
// and statuses go to whoever started that child.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bcvk/bcvk/pkg/command"
	"golang.org/x/sys/unix"
)

// Proc is a started child.
type Proc struct {
	Name   string
	Pid    int
	done   chan struct{}
	status unix.WaitStatus
	out    limitedBuffer
	outEOF chan struct{}
}

// CaptureOutput copies r (the child's output pipe) to w and keeps the last
// of it for Output; it returns at EOF and closes r.
func (p *Proc) CaptureOutput(r io.ReadCloser, w io.Writer) {
	defer close(p.outEOF)
	defer r.Close()
	_, _ = io.Copy(io.MultiWriter(w, &p.out), r)
}

// Output returns the last lines the child printed, as ": LINES" ready to
// end a message, once the child has exited and its output is read.
func (p *Proc) Output() string {
	select {
	case <-p.outEOF:
	case <-time.After(time.Second):
	}
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	return ": " + strings.Join(lines, "; ")
}

// Done is closed when the child has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Status is valid after Done is closed.
func (p *Proc) Status() unix.WaitStatus { return p.status }

// Signal sends sig to the child unless it has already been reaped.
func (p *Proc) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = unix.Kill(p.Pid, sig)
	}
}

// ExitDescription says how the child ended, for messages.
func (p *Proc) ExitDescription() string {
	ws := p.status
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return "was killed by " + SignalName(ws.Signal())
	}
	return "ended"
}

// SignalName is the signal's C name ("SIGKILL"), which users search for,
// not Go's description ("killed").
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// StartLogged starts cmd with its stderr, and its stdout unless cmd has
// one, copied to log and the last of them kept for Output.
func (t *Table) StartLogged(name string, cmd *exec.Cmd, log io.Writer) (*Proc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if cmd.Stdout == nil {
		cmd.Stdout = w
	}
	cmd.Stderr = w
	p, err := t.Start(name, cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go p.CaptureOutput(r, log)
	return p, nil
}

// Table tracks the children of this process.
type Table struct {
	mu   sync.Mutex
	live map[int]*Proc
	stop func()
}

// NewTable starts the reaper; Close stops it.
func NewTable() *Table {
	t := &Table{live: map[int]*Proc{}}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				t.reap()
			case <-quit:
				return
			}
		}
	}()
	t.stop = func() { signal.Stop(ch); close(quit) }
	return t
}

// Close stops the reaper.
func (t *Table) Close() { t.stop() }

// Start starts cmd. The lock is held from before the fork until the child
// is registered, so the reaper cannot hand its status to nobody.
func (t *Table) Start(name string, cmd *exec.Cmd) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Nothing we start may outlive us.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Pid: cmd.Process.Pid, done: make(chan struct{}), outEOF: make(chan struct{})}
	t.live[p.Pid] = p
	return p, nil
}

func (t *Table) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		t.mu.Lock()
		if p, ok := t.live[pid]; ok {
			delete(t.live, pid)
			p.status = ws
			close(p.done)
		}
		t.mu.Unlock()
	}
}

// Run runs argv to completion through the table, for short helper commands.
// stdout may be nil. The error is a *command.Error.
func (t *Table) Run(ctx context.Context, stdout io.Writer, argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr limitedBuffer
	// os/exec copies into non-file writers with goroutines that end at
	// Wait, which we never call; use pipes we drain ourselves.
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	p, err := t.Start(argv[0], cmd)
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return &command.Error{Argv: argv, Inner: err}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer outR.Close()
		if stdout == nil {
			stdout = io.Discard
		}
		_, _ = io.Copy(stdout, outR)
	}()
	go func() { defer wg.Done(); defer errR.Close(); _, _ = io.Copy(&stderr, errR) }()
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Signal(unix.SIGKILL)
		<-p.Done()
	}
	wg.Wait()
	ws := p.Status()
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	inner := errors.New(p.ExitDescription())
	if ctx.Err() != nil {
		inner = fmt.Errorf("%w: %s", ctx.Err(), p.ExitDescription())
	}
	return &command.Error{Argv: argv, Stderr: stderr.String(), Inner: &ExitError{Status: ws, err: inner}}
}

// ExitError carries a child's wait status.
type ExitError struct {
	Status unix.WaitStatus
	err    error
}

func (e *ExitError) Error() string { return e.err.Error() }

type limitedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 64<<10 {
		l.b = l.b[len(l.b)-64<<10:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
