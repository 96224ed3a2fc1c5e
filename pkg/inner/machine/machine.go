// Package machine runs one VM: its helper processes (virtiofsd, and later
// a vsock backend), then QEMU, with one QMP connection; it reports what the
// VM says as guest inputs and stops everything on every path.
package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/bcvk/bcvk/pkg/inner/console"
	"github.com/bcvk/bcvk/pkg/inner/guest"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"golang.org/x/sys/unix"
)

// Named timeouts.
const (
	HelperStartTimeout = 10 * time.Second
	QMPStartTimeout    = 10 * time.Second
	helperStopTimeout  = 2 * time.Second
	// A helper also ends when QEMU closes its socket on the way out (guest
	// power-off or reboot), a moment before QEMU's own exit is seen: within
	// this grace that is not a failure.
	helperExitGrace = 2 * time.Second
	socketPoll      = 5 * time.Millisecond
	consoleLines    = 40
)

// Helper is a process QEMU connects to through a unix socket it creates.
type Helper struct {
	Name   string
	Argv   []string
	Socket string
}

// Config is one machine.
type Config struct {
	Helpers   []Helper
	QEMU      []string // argv
	QMPSocket string
	// QEMUFiles are inherited by QEMU as descriptors 3, 4, ...
	QEMUFiles []*os.File
	Stdin     *os.File  // the guest's console input, or nil
	Console   io.Writer // everything the guest prints
	Stderr    io.Writer // the helpers' and QEMU's own messages
}

// Machine is one started QEMU with its helpers.
type Machine struct {
	qemu *proc.Proc
	// mu guards helpers: AddHelper may run beside StopHelpers.
	mu      sync.Mutex
	helpers []*proc.Proc
	qmp     *qemu.QMP
	watcher *console.Watcher
	inputs  chan guest.Input
	died    chan *proc.Proc
	drained chan struct{} // console and QMP both ended
}

// StartHelper starts h without waiting for its socket, so that it comes up
// while other work goes on; pass it to Start in early.
func StartHelper(t *proc.Table, h Helper, stderr io.Writer) (*proc.Proc, error) {
	_ = os.Remove(h.Socket)
	return t.StartLogged(h.Name, exec.Command(h.Argv[0], h.Argv[1:]...), stderr)
}

// Start starts the helpers (early[i], when not nil, is Helpers[i] already
// started), waits for their sockets, and starts QEMU. On failure nothing it
// started (or was given) is left running.
func Start(ctx context.Context, t *proc.Table, c Config, early ...*proc.Proc) (_ *Machine, err error) {
	m := &Machine{inputs: make(chan guest.Input), died: make(chan *proc.Proc, 1), drained: make(chan struct{})}
	q := newQueue()
	go q.pump(m.inputs)
	for _, p := range early {
		if p != nil {
			m.helpers = append(m.helpers, p)
		}
	}
	defer func() {
		if err != nil {
			m.Kill()
			q.close()
		}
	}()
	for i, h := range c.Helpers {
		var p *proc.Proc
		if i < len(early) && early[i] != nil {
			p = early[i]
		} else if p, err = StartHelper(t, h, c.Stderr); err != nil {
			return nil, err
		} else {
			m.helpers = append(m.helpers, p)
		}
		if err = WaitSocket(ctx, h.Socket, p, HelperStartTimeout); err != nil {
			return nil, err
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.QEMU[0], c.QEMU[1:]...)
	cmd.ExtraFiles = c.QEMUFiles
	cmd.Stdout = w
	if c.Stdin != nil {
		cmd.Stdin = c.Stdin
	}
	_ = os.Remove(c.QMPSocket)
	m.qemu, err = t.StartLogged("qemu", cmd, c.Stderr)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	m.watcher = console.New(consoleLines)
	m.watcher.OnFirstOutput = func() { q.push(guest.Input{Kind: guest.ConsoleOutput}) }
	m.watcher.OnLine = func(l string) { q.push(guest.Input{Kind: guest.ConsoleLine, Text: l}) }
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		defer r.Close()
		m.watcher.Copy(r, c.Console)
	}()
	m.qmp, err = dialQMP(ctx, c.QMPSocket, m.qemu)
	if err != nil {
		select {
		case <-m.qemu.Done():
			// QEMU ended before its monitor was up: that is how this VM
			// ended, for the caller to judge, not a failure to start.
			err = nil
		default:
			go func() { <-consoleDone; q.close(); close(m.drained) }()
			return nil, fmt.Errorf("QMP: %w", err)
		}
	}
	go m.forward(q, m.qmp.Events(), consoleDone)
	m.watchHelpers()
	return m, nil
}

// forward turns QMP events into guest inputs, and ends the inputs once
// both the console and QMP have ended.
func (m *Machine) forward(q *queue, events <-chan qemu.Event, consoleDone <-chan struct{}) {
	for e := range events {
		in := guest.Input{Kind: guest.QMPEvent, Text: e.Name}
		switch e.Name {
		case "SHUTDOWN":
			in.Detail = e.ShutdownReason()
		case "MIGRATION":
			in.Detail = e.Status()
		}
		q.push(in)
	}
	<-consoleDone
	q.close()
	close(m.drained)
}

// Inputs delivers what the VM reports; it is closed after QEMU ended and
// everything it said was delivered.
func (m *Machine) Inputs() <-chan guest.Input { return m.inputs }

// QMP is the VM's monitor connection.
func (m *Machine) QMP() *qemu.QMP { return m.qmp }

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.qemu.Done() }

// QEMU is QEMU's process, for its exit status and last messages.
func (m *Machine) QEMU() *proc.Proc { return m.qemu }

// ConsoleTail returns the last console lines.
func (m *Machine) ConsoleTail() []string { return m.watcher.Tail() }

// Helpers are the started helpers, in Config order, then those added.
func (m *Machine) Helpers() []*proc.Proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*proc.Proc(nil), m.helpers...)
}

// AddHelper starts h for the running VM (a device QEMU gets later) and
// waits for its socket; from then on it is watched and stopped like the
// others.
func (m *Machine) AddHelper(ctx context.Context, t *proc.Table, h Helper, stderr io.Writer) error {
	p, err := StartHelper(t, h, stderr)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.helpers = append(m.helpers, p)
	m.mu.Unlock()
	if err := WaitSocket(ctx, h.Socket, p, HelperStartTimeout); err != nil {
		return err // stopped with the others
	}
	m.watchHelper(p)
	return nil
}

// HelperDied delivers the first helper that ended while QEMU ran.
func (m *Machine) HelperDied() <-chan *proc.Proc { return m.died }

func (m *Machine) watchHelpers() {
	for _, p := range m.Helpers() {
		m.watchHelper(p)
	}
}

func (m *Machine) watchHelper(p *proc.Proc) {
	go func() {
		select {
		case <-p.Done():
		case <-m.qemu.Done():
			return
		}
		grace := time.NewTimer(helperExitGrace)
		defer grace.Stop()
		select {
		case <-m.qemu.Done():
			return
		case <-grace.C:
		}
		select {
		case m.died <- p:
		default:
		}
	}()
}

// Wait waits until QEMU has exited and the console and QMP have ended;
// the inputs need no reader for that.
func (m *Machine) Wait() {
	if m.qemu == nil {
		return
	}
	<-m.qemu.Done()
	m.qmp.Close() // QEMU's end closes it too; this is for a forked QEMU child
	<-m.drained
}

// Kill kills QEMU, waits for it and stops the helpers.
func (m *Machine) Kill() {
	if m.qemu != nil {
		m.qemu.Signal(unix.SIGKILL)
		m.Wait()
	}
	m.StopHelpers()
}

// StopHelpers asks the helpers to end, and kills those that do not in time.
func (m *Machine) StopHelpers() {
	helpers := m.Helpers()
	for _, p := range helpers {
		p.Signal(unix.SIGTERM)
	}
	t := time.NewTimer(helperStopTimeout)
	defer t.Stop()
	for _, p := range helpers {
		select {
		case <-p.Done():
			continue
		case <-t.C:
		}
		for _, q := range helpers {
			q.Signal(unix.SIGKILL)
		}
		for _, q := range helpers {
			<-q.Done()
		}
		return
	}
}

// dialQMP connects to QEMU's monitor once QEMU listens: the socket file
// exists a moment before QEMU listens on it.
func dialQMP(ctx context.Context, path string, p *proc.Proc) (*qemu.QMP, error) {
	ctx, cancel := context.WithTimeout(ctx, QMPStartTimeout)
	defer cancel()
	if err := WaitSocket(ctx, path, p, QMPStartTimeout); err != nil {
		return nil, err
	}
	tick := time.NewTicker(socketPoll)
	defer tick.Stop()
	for {
		q, err := qemu.DialQMP(ctx, path)
		if !errors.Is(err, unix.ECONNREFUSED) {
			return q, err
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("%s %s before its monitor was ready%s", p.Name, p.ExitDescription(), p.Output())
		case <-ctx.Done():
			return nil, fmt.Errorf("QEMU's monitor did not answer within %s: %w", QMPStartTimeout, err)
		case <-tick.C:
		}
	}
}

// WaitSocket waits until path is a socket, failing early when p exits.
func WaitSocket(ctx context.Context, path string, p *proc.Proc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(socketPoll)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s %s before it was ready%s", p.Name, p.ExitDescription(), p.Output())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s did not create %s within %s", p.Name, path, timeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// queue holds inputs for the reader, so that neither the console nor QMP
// ever waits for the supervisor.
type queue struct {
	mu     sync.Mutex
	items  []guest.Input
	closed bool
	wake   chan struct{}
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

func (q *queue) push(in guest.Input) {
	q.mu.Lock()
	q.items = append(q.items, in)
	q.mu.Unlock()
	q.signal()
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pump delivers the items to out in order, and closes out after close.
func (q *queue) pump(out chan<- guest.Input) {
	defer close(out)
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, in := range items {
			out <- in
		}
		if closed && len(items) == 0 {
			return
		}
		if len(items) == 0 {
			<-q.wake
		}
	}
}
