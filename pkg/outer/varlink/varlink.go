// Package varlink serves bcvk's varlink API: the protocol (NUL-terminated
// JSON messages over a stream socket, https://varlink.org), the
// org.varlink.service interface, and bcvk's own interfaces, named and
// shaped as the Rust bcvk's so that callers can use either.
//
// The protocol is small enough to carry here: bcvk's methods neither stream
// replies nor upgrade connections, and the code-generation workflow of a
// varlink library would add a build step for five methods.
package varlink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// MaxMessage bounds one request: bcvk's largest parameters are a few
// paths and kernel arguments.
const MaxMessage = 1 << 20

// ServiceInterface is the interface every varlink service implements.
const ServiceInterface = "org.varlink.service"

// request is one message from a client.
type request struct {
	Method     string          `json:"method"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
	Oneway     bool            `json:"oneway,omitempty"`
	More       bool            `json:"more,omitempty"`
	Upgrade    bool            `json:"upgrade,omitempty"`
}

// reply is one message to a client.
type reply struct {
	Parameters any    `json:"parameters"`
	Continues  bool   `json:"continues,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Error is a varlink error: its fully qualified name and parameters.
type Error struct {
	Name       string
	Parameters any
}

func (e *Error) Error() string {
	if m, ok := e.Parameters.(Message); ok {
		return e.Name + ": " + m.Message
	}
	return e.Name
}

// Message is the parameters of bcvk's own errors: what bcvk would have
// printed after "Error: ".
type Message struct {
	Message string `json:"message"`
}

// InterfaceNotFound and the three below are org.varlink.service's errors.
func InterfaceNotFound(name string) *Error {
	return &Error{ServiceInterface + ".InterfaceNotFound", map[string]string{"interface": name}}
}

// MethodNotFound names a method the interface lacks.
func MethodNotFound(name string) *Error {
	return &Error{ServiceInterface + ".MethodNotFound", map[string]string{"method": name}}
}

// MethodNotImplemented refuses a call bcvk cannot answer (an upgrade).
func MethodNotImplemented(name string) *Error {
	return &Error{ServiceInterface + ".MethodNotImplemented", map[string]string{"method": name}}
}

// InvalidParameter names a missing, unknown or mistyped parameter.
func InvalidParameter(name string) *Error {
	return &Error{ServiceInterface + ".InvalidParameter", map[string]string{"parameter": name}}
}

// MethodFunc answers one call with its reply parameters.
type MethodFunc func(ctx context.Context, params json.RawMessage) (any, error)

// Method adapts a typed function: the parameters are decoded into P (an
// unknown field or a wrong type is InvalidParameter naming the field).
func Method[P, R any](f func(context.Context, P) (R, error)) MethodFunc {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p P
		if err := Decode(raw, &p); err != nil {
			return nil, err
		}
		return f(ctx, p)
	}
}

// Decode reads parameters strictly: a caller's typo is an error, not a
// silently ignored option.
func Decode(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return InvalidParameter("parameters")
		}
		return InvalidParameter(te.Field)
	}
	// encoding/json names an unknown field only in its message.
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return InvalidParameter(strings.Trim(f, `"`))
	}
	return InvalidParameter("parameters")
}

// Interface is one served interface.
type Interface struct {
	Name string
	// Description is the interface definition, as GetInterfaceDescription
	// returns it.
	Description string
	Methods     map[string]MethodFunc
	// Fail turns a method's error that is not an *Error into this
	// interface's error.
	Fail func(error) *Error
}

// Service is a varlink service: its identity and interfaces.
type Service struct {
	Vendor, Product, Version, URL string
	interfaces                    map[string]*Interface
}

// NewService makes a service that answers org.varlink.service.
func NewService(vendor, product, version, url string) *Service {
	s := &Service{Vendor: vendor, Product: product, Version: version, URL: url, interfaces: map[string]*Interface{}}
	s.Register(&Interface{
		Name:        ServiceInterface,
		Description: serviceDescription,
		Methods: map[string]MethodFunc{
			"GetInfo": Method(func(context.Context, struct{}) (Info, error) { return s.Info(), nil }),
			"GetInterfaceDescription": Method(func(_ context.Context, p struct {
				Interface string `json:"interface"`
			}) (any, error) {
				i, ok := s.interfaces[p.Interface]
				if !ok {
					return nil, InterfaceNotFound(p.Interface)
				}
				return map[string]string{"description": i.Description}, nil
			}),
		},
	})
	return s
}

// Register adds an interface; register all before serving.
func (s *Service) Register(i *Interface) { s.interfaces[i.Name] = i }

// Info is GetInfo's reply.
type Info struct {
	Vendor     string   `json:"vendor"`
	Product    string   `json:"product"`
	Version    string   `json:"version"`
	URL        string   `json:"url"`
	Interfaces []string `json:"interfaces"`
}

// Info describes the service.
func (s *Service) Info() Info {
	names := make([]string, 0, len(s.interfaces))
	for n := range s.interfaces {
		names = append(names, n)
	}
	sort.Strings(names)
	return Info{Vendor: s.Vendor, Product: s.Product, Version: s.Version, URL: s.URL, Interfaces: names}
}

// call answers one request; its error names the varlink error.
func (s *Service) call(ctx context.Context, method string, params json.RawMessage) (any, *Error) {
	i := strings.LastIndexByte(method, '.')
	if i <= 0 || i == len(method)-1 {
		return nil, InvalidParameter("method")
	}
	iface, ok := s.interfaces[method[:i]]
	if !ok {
		return nil, InterfaceNotFound(method[:i])
	}
	m, ok := iface.Methods[method[i+1:]]
	if !ok {
		return nil, MethodNotFound(method)
	}
	out, err := m(ctx, params)
	if err == nil {
		if out == nil {
			out = struct{}{}
		}
		return out, nil
	}
	var ve *Error
	if errors.As(err, &ve) {
		return nil, ve
	}
	if iface.Fail != nil {
		return nil, iface.Fail(err)
	}
	return nil, &Error{Name: iface.Name + ".Failed", Parameters: Message{err.Error()}}
}

// ServeConn answers the requests of one connection, in order, until the
// client closes it or ctx ends. A message that is not a request ends the
// connection: its framing can no longer be trusted.
func (s *Service) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		msg, err := readMessage(r)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		var req request
		if err := json.Unmarshal(msg, &req); err != nil {
			return fmt.Errorf("varlink: a message that is not a request: %w", err)
		}
		var rep reply
		switch {
		case req.Method == "":
			rep = errorReply(InvalidParameter("method"))
		case req.Upgrade:
			// bcvk's interfaces have no protocol to upgrade to.
			rep = errorReply(MethodNotImplemented(req.Method))
		default:
			out, verr := s.call(ctx, req.Method, req.Parameters)
			if verr != nil {
				logrus.Debugf("varlink %s: %v", req.Method, verr)
				rep = errorReply(verr)
			} else {
				// No method streams: a "more" call gets one reply without
				// "continues", which ends it.
				rep = reply{Parameters: out}
			}
		}
		if req.Oneway {
			continue
		}
		if err := writeMessage(w, rep); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func errorReply(e *Error) reply {
	p := e.Parameters
	if p == nil {
		p = struct{}{}
	}
	return reply{Parameters: p, Error: e.Name}
}

// readMessage reads up to the next NUL, which it drops.
func readMessage(r *bufio.Reader) ([]byte, error) {
	var msg []byte
	for {
		chunk, err := r.ReadSlice(0)
		msg = append(msg, chunk...)
		if len(msg) > MaxMessage {
			return nil, fmt.Errorf("varlink: a message longer than %d bytes", MaxMessage)
		}
		switch {
		case err == nil:
			return msg[:len(msg)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(msg) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

func writeMessage(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, 0)); err != nil {
		return err
	}
	return w.Flush()
}

// Serve accepts connections on l and serves each until ctx ends; then it
// closes l (a unix listener removes its socket file) and waits for the
// calls in progress, which see ctx end and clean up after themselves.
func (s *Service) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ServeConn(ctx, c); err != nil {
				logrus.Warnf("varlink connection: %v", err)
			}
		}()
	}
}
