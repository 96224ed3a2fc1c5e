package command

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestErrorCarriesCommandAndStderr(t *testing.T) {
	err := Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "echo oops >&2; exit 3"}})
	var ce *Error
	if !errors.As(err, &ce) || ExitCode(err) != 3 {
		t.Fatalf("got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "sh -c") || !strings.Contains(msg, "Command Output: oops") {
		t.Fatalf("message %q", msg)
	}
}

// A command line that holds a user's secret is shown as Display in errors.
func TestErrorShowsDisplayNotArgv(t *testing.T) {
	err := Run(context.Background(), Cmd{
		Argv:    []string{"sh", "-c", "exit 1", "TOKEN=hunter2"},
		Display: []string{"sh", "-c", "exit 1", "COMMAND"},
	})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "COMMAND") {
		t.Fatalf("got %v", err)
	}
}
