package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// QMP is one connection to QEMU's monitor, held for the VM's life.
// Commands are answered by id; asynchronous events go to every subscriber.
type QMP struct {
	conn net.Conn

	mu      sync.Mutex
	nextID  int
	pending map[string]chan reply
	subs    map[chan Event]struct{}
	closed  bool
	done    chan struct{} // closed when the connection ends
	events  <-chan Event
}

// Event is one asynchronous QMP event ("SHUTDOWN", "GUEST_PANICKED", ...).
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

// ShutdownReason is SHUTDOWN's reason ("guest-shutdown", "guest-reset",
// "guest-panic", "host-signal", ...).
func (e Event) ShutdownReason() string { return e.field("reason") }

// Status is the status of MIGRATION and the run state of STOP's query.
func (e Event) Status() string { return e.field("status") }

func (e Event) field(name string) string {
	var m map[string]any
	_ = json.Unmarshal(e.Data, &m)
	s, _ := m[name].(string)
	return s
}

type reply struct {
	ret json.RawMessage
	err error
}

// eventBuffer bounds a subscriber's queue; a VM sends a handful of events.
const eventBuffer = 256

// DialQMP connects, reads the greeting and negotiates capabilities.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	_, err = r.ReadBytes('\n')
	if !stop() || err != nil {
		conn.Close()
		return nil, fmt.Errorf("QMP greeting: %w", errors.Join(err, ctx.Err()))
	}
	q := &QMP{conn: conn, pending: map[string]chan reply{}, subs: map[chan Event]struct{}{}, done: make(chan struct{})}
	// Subscribed before anything is read: no event of the VM is missed.
	q.events, _ = q.Subscribe()
	go q.read(r)
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

// Done is closed when the connection has ended (QEMU exited, or Close).
// A nil QMP (QEMU ended before its monitor was up) is a closed one.
func (q *QMP) Done() <-chan struct{} {
	if q == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return q.done
}

// Close ends the connection.
func (q *QMP) Close() error {
	if q == nil {
		return nil
	}
	return q.conn.Close()
}

// Events delivers every event since the connection was made; it is closed
// when the connection ends. Read it, or events are dropped once it is full.
func (q *QMP) Events() <-chan Event {
	if q == nil {
		ch := make(chan Event)
		close(ch)
		return ch
	}
	return q.events
}

// Subscribe returns a channel of the events from now on, closed when the
// connection ends; cancel stops the delivery.
func (q *QMP) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, eventBuffer)
	if q == nil {
		close(ch)
		return ch, func() {}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		close(ch)
		return ch, func() {}
	}
	q.subs[ch] = struct{}{}
	return ch, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if _, ok := q.subs[ch]; ok {
			delete(q.subs, ch)
			close(ch)
		}
	}
}

// Execute runs one command and returns its "return" value.
func (q *QMP) Execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	if q == nil {
		return nil, fmt.Errorf("QMP %s: QEMU has no monitor", cmd)
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, fmt.Errorf("QMP %s: the connection is closed", cmd)
	}
	q.nextID++
	id := fmt.Sprint(q.nextID)
	ch := make(chan reply, 1)
	q.pending[id] = ch
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
	}()
	b, err := json.Marshal(struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{cmd, args, id})
	if err != nil {
		return nil, err
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", cmd, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("QMP %s: %w", cmd, r.err)
		}
		return r.ret, nil
	case <-q.done:
		return nil, fmt.Errorf("QMP %s: the connection closed", cmd)
	case <-ctx.Done():
		return nil, fmt.Errorf("QMP %s: %w", cmd, ctx.Err())
	}
}

// maxQMPLine bounds one message; `info registers -a` of many vCPUs is the
// largest we ask for.
const maxQMPLine = 4 << 20

func (q *QMP) read(r *bufio.Reader) {
	defer q.shutdown()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxQMPLine)
	for sc.Scan() {
		var m struct {
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			ID     string          `json:"id"`
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		q.mu.Lock()
		switch {
		case m.Event != "":
			for ch := range q.subs {
				select {
				case ch <- Event{Name: m.Event, Data: m.Data}:
				default: // a subscriber that stopped reading loses events, not the connection
				}
			}
		case q.pending[m.ID] != nil:
			r := reply{ret: m.Return}
			if m.Error != nil {
				r.err = errors.New(m.Error.Desc)
			}
			q.pending[m.ID] <- r
		}
		q.mu.Unlock()
	}
}

func (q *QMP) shutdown() {
	q.conn.Close()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for ch := range q.subs {
		close(ch)
	}
	q.subs = nil
	close(q.done)
}

// Status returns the VM's run state ("running", "internal-error", ...).
func (q *QMP) Status(ctx context.Context) (string, error) {
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}
