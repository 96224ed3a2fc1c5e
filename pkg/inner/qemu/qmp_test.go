package qemu

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/inner/qemu/qmptest"
)

// serve answers with h, which may send events through the server.
func serve(t *testing.T, h func(srv *qmptest.Server, cmd string, args json.RawMessage) (any, string)) (*qmptest.Server, *QMP) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var srv *qmptest.Server
	srv = qmptest.New(func(cmd string, args json.RawMessage) (any, string) { return h(srv, cmd, args) })
	srv.Start(ln)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return srv, q
}

func TestQMPCommandsAndEvents(t *testing.T) {
	calls := 0
	srv, q := serve(t, func(_ *qmptest.Server, cmd string, _ json.RawMessage) (any, string) {
		calls++
		switch cmd {
		case "query-status":
			return map[string]any{"status": "internal-error", "running": false}, ""
		}
		return nil, "The command " + cmd + " has not been found"
	})
	events, cancel := q.Subscribe()
	defer cancel()
	// One connection for many commands.
	for range 3 {
		st, err := q.Status(t.Context())
		if err != nil || st != "internal-error" {
			t.Fatalf("%q %v", st, err)
		}
	}
	if _, err := q.Execute(t.Context(), "nope", nil); err == nil || !strings.Contains(err.Error(), "has not been found") {
		t.Fatalf("error %v", err)
	}
	srv.Emit("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-reset"})
	select {
	case e := <-events:
		if e.Name != "SHUTDOWN" || e.ShutdownReason() != "guest-reset" {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	if calls != 4 {
		t.Errorf("%d calls", calls)
	}
	q.Close()
	select {
	case _, ok := <-events:
		if ok {
			t.Fatal("events open after close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events not closed")
	}
	if _, err := q.Execute(t.Context(), "query-status", nil); err == nil {
		t.Fatal("a closed connection answered")
	}
}

func TestQMPContextEndsAWait(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	_, q := serve(t, func(*qmptest.Server, string, json.RawMessage) (any, string) { <-block; return nil, "" })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.Execute(ctx, "query-status", nil); err == nil {
		t.Fatal("no timeout")
	}
}

func TestSaveAndRestoreFollowEvents(t *testing.T) {
	for _, c := range []struct {
		name, final, desc string
		restore           bool
	}{
		{"save", "completed", "", false},
		{"restore", "completed", "", true},
		{"failure", "failed", "disk full", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var seen []string
			var mu sync.Mutex
			_, q := serve(t, func(srv *qmptest.Server, cmd string, _ json.RawMessage) (any, string) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, cmd)
				switch cmd {
				case "migrate", "migrate-incoming":
					go func() {
						srv.Emit("MIGRATION", map[string]string{"status": "active"})
						srv.Emit("MIGRATION", map[string]string{"status": c.final})
					}()
				case "query-migrate":
					return map[string]string{"status": c.final, "error-desc": c.desc}, ""
				}
				return nil, ""
			})
			var err error
			if c.restore {
				err = RestoreState(t.Context(), q, "/x")
			} else {
				err = SaveState(t.Context(), q, "/x")
			}
			if c.desc != "" {
				if err == nil || !strings.Contains(err.Error(), "migration failed: disk full") {
					t.Fatalf("error %v", err)
				}
				// A failed save still lets the user's VM run again.
				if last := seen[len(seen)-1]; last != "cont" {
					t.Errorf("after a failed save: commands %q", seen)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if last := seen[len(seen)-1]; last != "cont" {
				t.Errorf("commands %q", seen)
			}
		})
	}
}

// QEMU sends "completed" while the VM is still in finish-migrate, where
// `cont` fails ("Migration is not finalized yet"): cont waits for the state
// to end.
func TestSaveContinuesOnlyAfterFinishMigrate(t *testing.T) {
	var mu sync.Mutex
	var statusAsked int
	var contDuring string
	_, q := serve(t, func(srv *qmptest.Server, cmd string, _ json.RawMessage) (any, string) {
		mu.Lock()
		defer mu.Unlock()
		state := "postmigrate"
		if statusAsked < 3 {
			state = "finish-migrate"
		}
		switch cmd {
		case "migrate":
			go srv.Emit("MIGRATION", map[string]string{"status": "completed"})
		case "query-status":
			statusAsked++
			return map[string]string{"status": state}, ""
		case "cont":
			contDuring = state
			if state == "finish-migrate" {
				return nil, "Migration is not finalized yet"
			}
		}
		return nil, ""
	})
	if err := SaveState(t.Context(), q, "/x"); err != nil {
		t.Fatalf("save: %v (cont during %q)", err, contDuring)
	}
	if contDuring != "postmigrate" || statusAsked < 4 {
		t.Fatalf("cont during %q after %d status queries", contDuring, statusAsked)
	}
}

func TestInstructionPointers(t *testing.T) {
	_, q := serve(t, func(*qmptest.Server, string, json.RawMessage) (any, string) { return registersTwoCPUs, "" })
	got, err := InstructionPointers(t.Context(), q)
	if err != nil || len(got) != 2 {
		t.Fatalf("%x %v", got, err)
	}
}

// QEMU that ended before its monitor was up leaves a nil QMP: closed.
func TestNilQMP(t *testing.T) {
	var q *QMP
	if _, err := q.Execute(t.Context(), "query-status", nil); err == nil {
		t.Error("a nil monitor answered")
	}
	if _, ok := <-q.Events(); ok {
		t.Error("events from a nil monitor")
	}
	ch, cancel := q.Subscribe()
	defer cancel()
	if _, ok := <-ch; ok {
		t.Error("a subscription to a nil monitor")
	}
	<-q.Done()
	if q.Close() != nil {
		t.Error("close")
	}
}

func TestDialQMPFailures(t *testing.T) {
	if _, err := DialQMP(t.Context(), filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Error("dialled nothing")
	}
	// A socket that never greets: the context ends the wait.
	path := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := DialQMP(ctx, path); err == nil || !strings.Contains(err.Error(), "QMP greeting") {
		t.Errorf("error %v", err)
	}
}

func TestKVMUsable(t *testing.T) {
	if err := KVMUsable(filepath.Join(t.TempDir(), "kvm")); err == nil {
		t.Error("a missing device is usable")
	}
	if err := KVMUsable("/dev/null"); err == nil {
		t.Error("/dev/null answers the KVM API")
	}
}
