// Package qmptest is a QMP server for tests: the QEMU side of the protocol,
// with commands answered by a handler and events sent at will.
package qmptest

import (
	"bufio"
	"encoding/json"
	"net"
	"sync"
)

// Handler answers one command: a return value, or a non-empty error.
type Handler func(cmd string, args json.RawMessage) (ret any, errDesc string)

// Server serves QMP on a listener, one client at a time.
type Server struct {
	ln      net.Listener
	handler Handler

	mu   sync.Mutex
	conn net.Conn
	enc  *json.Encoder
	wait chan struct{} // closed once a client has negotiated capabilities
}

// Serve starts answering on ln until ln is closed.
func Serve(ln net.Listener, h Handler) *Server {
	s := New(h)
	s.Start(ln)
	return s
}

// New returns a server that answers with h once started; h may use the
// server (to send events).
func New(h Handler) *Server { return &Server{handler: h, wait: make(chan struct{})} }

// Start answers on ln until ln is closed.
func (s *Server) Start(ln net.Listener) {
	s.ln = ln
	go s.accept()
}

// Ready is closed once a client has negotiated capabilities.
func (s *Server) Ready() <-chan struct{} { return s.wait }

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	s.conn, s.enc = c, json.NewEncoder(c)
	_ = s.enc.Encode(map[string]any{"QMP": map[string]any{"version": map[string]any{}, "capabilities": []string{}}})
	s.mu.Unlock()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var m struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        any             `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		var ret any = map[string]any{}
		desc := ""
		if m.Execute != "qmp_capabilities" {
			ret, desc = s.handler(m.Execute, m.Arguments)
		}
		s.mu.Lock()
		if desc != "" {
			_ = s.enc.Encode(map[string]any{"error": map[string]any{"class": "GenericError", "desc": desc}, "id": m.ID})
		} else {
			if ret == nil {
				ret = map[string]any{}
			}
			_ = s.enc.Encode(map[string]any{"return": ret, "id": m.ID})
		}
		s.mu.Unlock()
		if m.Execute == "qmp_capabilities" {
			select {
			case <-s.wait:
			default:
				close(s.wait)
			}
		}
	}
	s.mu.Lock()
	s.conn, s.enc = nil, nil
	s.mu.Unlock()
}

// Emit sends an event to the client, if one is connected.
func (s *Server) Emit(name string, data any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enc == nil {
		return
	}
	_ = s.enc.Encode(map[string]any{"event": name, "data": data, "timestamp": map[string]int{"seconds": 0, "microseconds": 0}})
}
