package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/proc"
	"golang.org/x/sys/unix"
)

// guestShell is a root shell kept open in the guest over SSH. Started
// once, it runs shell builtins without opening a file from the guest's
// root: it still works when virtiofsd has no descriptor left for a new
// login (which must exec programs).
type guestShell struct {
	argv  []string // ssh ... root@guest sh
	table *proc.Table
	p     *proc.Proc
	in    io.WriteCloser
	out   *bufio.Reader
	outR  *os.File
}

// doneMarker ends each command's output.
const doneMarker = "bcvk-guest-shell-done"

// run runs line (shell builtins only) and waits for it, starting the
// shell first when it is not running.
func (g *guestShell) run(ctx context.Context, line string) error {
	if g.p == nil {
		if err := g.start(); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(g.in, "%s; echo %s $?\n", line, doneMarker); err != nil {
		g.close()
		return err
	}
	res := make(chan error, 1)
	out := g.out
	go func() {
		for {
			l, err := out.ReadString('\n')
			if err != nil {
				res <- err
				return
			}
			if rest, ok := strings.CutPrefix(l, doneMarker+" "); ok {
				if s := strings.TrimSpace(rest); s != "0" {
					res <- fmt.Errorf("exit status %s", s)
				} else {
					res <- nil
				}
				return
			}
		}
	}()
	select {
	case err := <-res:
		if err != nil && !strings.HasPrefix(err.Error(), "exit status") {
			g.close()
		}
		return err
	case <-ctx.Done():
		g.close() // the reader goroutine ends with the pipe
		return ctx.Err()
	}
}

func (g *guestShell) start() error {
	cmd := exec.Command(g.argv[0], g.argv[1:]...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		in.Close()
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	p, err := g.table.Start("guest shell", cmd)
	w.Close()
	if err != nil {
		in.Close()
		r.Close()
		return err
	}
	g.p, g.in, g.out, g.outR = p, in, bufio.NewReader(r), r
	return nil
}

// close ends the shell; the next run starts a new one.
func (g *guestShell) close() {
	if g.p == nil {
		return
	}
	g.in.Close()
	g.p.Signal(unix.SIGKILL)
	<-g.p.Done()
	g.outR.Close()
	g.p, g.in, g.out, g.outR = nil, nil, nil, nil
}
