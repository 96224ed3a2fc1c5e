package vm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bcvk/bcvk/pkg/consolelog"
)

// logs prints the rotated part first, then the current one, and what the
// guest printed reaches a non-terminal without any control sequence.
func TestFollowRotatedAndFiltered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(consolelog.RotatedPath(path), []byte("old part\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("new \x1b]52;c;cm0gLXJmCg==\x07part\x1b[1;31m red\x1b[0m\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	close(stop)
	var out bytes.Buffer
	if err := Follow(context.Background(), path, &out, stop); err != nil {
		t.Fatal(err)
	}
	if want := "old part\nnew part red\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}
