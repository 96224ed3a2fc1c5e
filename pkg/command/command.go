// Package command is the one place where bcvk runs external programs to
// completion. Its error carries the command line and what the program wrote
// to stderr, so the top level can print the whole story once.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
)

// Error is a failed command.
type Error struct {
	Argv   []string
	Stderr string
	Inner  error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("command %q failed: %v", strings.Join(e.Argv, " "), e.Inner)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += "\nCommand Output: " + s
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Inner }

// ExitCode returns the exit status of a command that ran and failed, or -1.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Cmd describes one command to run.
type Cmd struct {
	Argv   []string
	Stdin  io.Reader
	Stdout io.Writer // nil: captured and returned by Output
	Stderr io.Writer // copy of stderr besides the captured one
	// Display is the command line that errors show, when Argv holds
	// something that must not appear there (a user's remote command may
	// carry secrets); the debug log shows Argv.
	Display []string
	// NewProcessGroup keeps terminal signals (Ctrl-C) away from the child;
	// bcvk then decides how to stop it. Interactive commands need the
	// terminal and so stay in the foreground group.
	NewProcessGroup bool
}

// Run runs c and waits; when ctx ends the child is killed.
func Run(ctx context.Context, c Cmd) error {
	_, err := run(ctx, c)
	return err
}

// Output runs c and returns its stdout.
func Output(ctx context.Context, argv ...string) ([]byte, error) {
	return run(ctx, Cmd{Argv: argv, NewProcessGroup: true})
}

func run(ctx context.Context, c Cmd) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("command: empty argv")
	}
	logrus.Debugf("running: %s", strings.Join(c.Argv, " "))
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = c.Stdin
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = &stdout
	}
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(c.Stderr, &tail{buf: &stderr})
	} else {
		cmd.Stderr = &stderr
	}
	// Pdeathsig: if bcvk is killed (SIGKILL, which it cannot clean up
	// after), its children go too, instead of lingering (a `podman exec`
	// would hold its ssh session open until the container goes).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: c.NewProcessGroup, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil && cmd.ProcessState != nil && !cmd.ProcessState.Exited() {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		shown := c.Argv
		if c.Display != nil {
			shown = c.Display
		}
		return stdout.Bytes(), &Error{Argv: shown, Stderr: stderr.String(), Inner: err}
	}
	return stdout.Bytes(), nil
}

// tail keeps at most the last 64 KiB written to it.
type tail struct{ buf *bytes.Buffer }

func (t *tail) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if over := t.buf.Len() - 64<<10; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}
