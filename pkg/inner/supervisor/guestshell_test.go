package supervisor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/inner/proc"
)

// The shell stays between commands, reports statuses, and is replaced
// after a timeout.
func TestGuestShell(t *testing.T) {
	tb := proc.NewTable()
	defer tb.Close()
	g := &guestShell{argv: []string{"sh"}, table: tb}
	defer g.close()
	ctx := context.Background()
	if err := g.run(ctx, "x=1"); err != nil {
		t.Fatal(err)
	}
	first := g.p.Pid
	if err := g.run(ctx, `test "$x" = 1`); err != nil {
		t.Fatalf("the shell did not stay: %v", err)
	}
	if g.p.Pid != first {
		t.Fatal("a new shell for the second command")
	}
	if err := g.run(ctx, "false"); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("false: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := g.run(tctx, "sleep 5"); err == nil {
		t.Fatal("want a timeout")
	}
	if g.p != nil {
		t.Fatal("the stuck shell was kept")
	}
	if err := g.run(ctx, "true"); err != nil || g.p.Pid == first {
		t.Fatalf("no fresh shell after the timeout: %v", err)
	}
}
