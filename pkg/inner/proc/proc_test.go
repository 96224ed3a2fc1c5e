package proc

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/command"
)

func TestStartAndStatus(t *testing.T) {
	tb := NewTable()
	defer tb.Close()
	p, err := tb.Start("sh", exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("exit not seen")
	}
	if !p.Status().Exited() || p.Status().ExitStatus() != 3 {
		t.Fatalf("status %v", p.ExitDescription())
	}
}

// Many short children at once: every status reaches its owner, none is
// lost to the reaper.
func TestManyChildren(t *testing.T) {
	tb := NewTable()
	defer tb.Close()
	var ps []*Proc
	for i := range 30 {
		p, err := tb.Start("true", exec.Command("sh", "-c", "exit "+string(rune('0'+i%8))))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i, p := range ps {
		select {
		case <-p.Done():
			if p.Status().ExitStatus() != i%8 {
				t.Errorf("child %d: %s", i, p.ExitDescription())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("child %d never reaped", i)
		}
	}
}

func TestRunOutputAndError(t *testing.T) {
	tb := NewTable()
	defer tb.Close()
	var out strings.Builder
	if err := tb.Run(context.Background(), &out, "sh", "-c", "echo hi"); err != nil || out.String() != "hi\n" {
		t.Fatalf("%q, %v", out.String(), err)
	}
	err := tb.Run(context.Background(), nil, "sh", "-c", "echo oops >&2; exit 2")
	var ce *command.Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Stderr, "oops") || !strings.Contains(err.Error(), "exited with status 2") {
		t.Fatalf("error %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := tb.Run(ctx, nil, "sleep", "30"); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("context did not stop the child: %v after %s", err, time.Since(start))
	}
}

func TestExitDescriptionNamesSignals(t *testing.T) {
	tb := NewTable()
	defer tb.Close()
	var log strings.Builder
	p, err := tb.StartLogged("sh", exec.Command("sh", "-c", "echo about to die; kill -KILL $$"), &syncWriter{b: &log})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if got := p.ExitDescription(); got != "was killed by SIGKILL" {
		t.Errorf("got %q", got)
	}
	if got := p.Output(); got != ": about to die" {
		t.Errorf("output %q", got)
	}
	if got := SignalName(6); got != "SIGABRT" {
		t.Errorf("got %q", got)
	}
	if got := SignalName(99); got != "signal 99" {
		t.Errorf("got %q", got)
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
