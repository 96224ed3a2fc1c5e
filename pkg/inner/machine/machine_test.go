package machine

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/inner/guest"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/inner/qemu/qmptest"
)

// The test binary, re-executed, plays the helper ("fake-helper SOCKET
// [exit N]") and QEMU ("fake-qemu QMP-SOCKET MODE").
func TestMain(m *testing.M) {
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case "fake-helper":
			if len(os.Args) > 3 {
				os.Exit(3)
			}
			ln, err := net.Listen("unix", os.Args[2])
			if err != nil {
				os.Exit(1)
			}
			defer ln.Close()
			select {}
		case "fake-qemu":
			fakeQEMU(os.Args[2], os.Args[3])
			return
		}
	}
	os.Exit(m.Run())
}

func fakeQEMU(qmpPath, mode string) {
	if mode == "no-monitor" {
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: -device foo: not found")
		os.Exit(1)
	}
	ln, err := net.Listen("unix", qmpPath)
	if err != nil {
		os.Exit(1)
	}
	defer ln.Close()
	srv := qmptest.Serve(ln, func(string, json.RawMessage) (any, string) { return nil, "" })
	<-srv.Ready()
	fmt.Println("\x1b[0mhello from the guest")
	srv.Emit("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-shutdown"})
	if mode == "hang" {
		select {}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func config(t *testing.T, mode string, helperArgs ...string) (Config, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "h.sock")
	qmp := filepath.Join(dir, "qmp.sock")
	console := &syncBuffer{}
	return Config{
		Helpers:   []Helper{{Name: "virtiofsd", Socket: sock, Argv: append([]string{self, "fake-helper", sock}, helperArgs...)}},
		QEMU:      []string{self, "fake-qemu", qmp, mode},
		QMPSocket: qmp,
		Console:   console,
		Stderr:    &syncBuffer{},
	}, console
}

func TestStartRunEnd(t *testing.T) {
	tb := proc.NewTable()
	defer tb.Close()
	c, console := config(t, "exit")
	m, err := Start(t.Context(), tb, c)
	if err != nil {
		t.Fatal(err)
	}
	var got []guest.Input
	for in := range m.Inputs() {
		got = append(got, in)
	}
	m.Wait()
	m.StopHelpers()
	want := map[string]bool{"console output": false, "line": false, "shutdown": false}
	for _, in := range got {
		switch {
		case in.Kind == guest.ConsoleOutput:
			want["console output"] = true
		case in.Kind == guest.ConsoleLine && in.Text == "hello from the guest":
			want["line"] = true
		case in.Kind == guest.QMPEvent && in.Text == "SHUTDOWN" && in.Detail == "guest-shutdown":
			want["shutdown"] = true
		}
	}
	for k, v := range want {
		if !v {
			t.Errorf("no %s in %+v", k, got)
		}
	}
	if !strings.Contains(console.String(), "hello from the guest") {
		t.Errorf("console %q", console.String())
	}
	if tail := m.ConsoleTail(); len(tail) != 1 {
		t.Errorf("tail %q", tail)
	}
	if !m.QEMU().Status().Exited() {
		t.Errorf("QEMU %s", m.QEMU().ExitDescription())
	}
}

func TestHelperFailsBeforeItsSocket(t *testing.T) {
	tb := proc.NewTable()
	defer tb.Close()
	c, _ := config(t, "exit", "exit", "3")
	_, err := Start(t.Context(), tb, c)
	if err == nil || !strings.Contains(err.Error(), "virtiofsd exited with status 3 before it was ready") {
		t.Fatalf("error %v", err)
	}
}

func TestQEMUEndsBeforeItsMonitor(t *testing.T) {
	tb := proc.NewTable()
	defer tb.Close()
	c, _ := config(t, "no-monitor")
	early, err := StartHelper(tb, c.Helpers[0], c.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Start(t.Context(), tb, c, early)
	if err != nil {
		t.Fatal(err)
	}
	for range m.Inputs() {
	}
	m.Wait()
	if _, err := m.QMP().Execute(t.Context(), "query-status", nil); err == nil {
		t.Error("a monitor that never was answered")
	}
	if out := m.QEMU().Output(); !strings.Contains(out, "not found") {
		t.Errorf("output %q", out)
	}
	m.StopHelpers()
	select {
	case <-early.Done():
	default:
		t.Error("the early helper outlived its machine")
	}
}

func TestHelperDiesWhileQEMURuns(t *testing.T) {
	tb := proc.NewTable()
	defer tb.Close()
	c, _ := config(t, "hang")
	m, err := Start(t.Context(), tb, c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	m.helpers[0].Signal(9)
	select {
	case p := <-m.HelperDied():
		if p.ExitDescription() != "was killed by SIGKILL" {
			t.Errorf("%s %s", p.Name, p.ExitDescription())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no report")
	}
	m.Kill()
	select {
	case <-m.Done():
	default:
		t.Error("QEMU runs after Kill")
	}
}

func TestWaitSocketTimesOut(t *testing.T) {
	tb := proc.NewTable()
	defer tb.Close()
	c, _ := config(t, "exit")
	c.Helpers[0].Argv = []string{"sleep", "30"}
	start := time.Now()
	p, err := StartHelper(tb, c.Helpers[0], c.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Signal(9)
	if err := WaitSocket(t.Context(), c.Helpers[0].Socket, p, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not create") || time.Since(start) > 5*time.Second {
		t.Fatalf("%v", err)
	}
}
