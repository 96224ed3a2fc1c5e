package journal

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/bcvk/bcvk/pkg/inner/vsock"
	"github.com/sirupsen/logrus"
)

// DefaultMaxConns bounds the connections read at once: journald keeps one
// open and opens another only when that one failed.
const DefaultMaxConns = 4

// Server writes the entries arriving on a listener to a Sink, each
// connection's in order; connections append to the same Sink.
type Server struct {
	Sink     *Sink
	MaxConns int // zero: DefaultMaxConns
	Log      logrus.FieldLogger

	malformed atomic.Uint64
	entries   atomic.Uint64
}

// Malformed counts what was skipped in all connections so far.
func (s *Server) Malformed() uint64 { return s.malformed.Load() }

// Entries counts the entries written (or dropped past the bound).
func (s *Server) Entries() uint64 { return s.entries.Load() }

// Serve reads connections on l until ctx ends, then closes l and the
// connections and returns nil.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	return vsock.ServeConns(ctx, l, maxConns, "the guest's journal", s.log(), s.handle)
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := NewReader(c)
	defer func() { s.malformed.Add(r.Malformed) }()
	for {
		e, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log().Debugf("the guest's journal connection ended: %v", err)
			}
			return
		}
		s.entries.Add(1)
		s.Sink.WriteLine(Line(e, time.Now()))
	}
}

func (s *Server) log() logrus.FieldLogger {
	if s.Log == nil {
		return logrus.StandardLogger()
	}
	return s.Log
}
