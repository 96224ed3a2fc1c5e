package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSSHConfig(t *testing.T) {
	got, err := SSHConfig("/usr/bin/podman", "dev", "root", "/run/user/1000/bcvk/dev-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Host dev\n", "User root\n", "IdentityFile /run/user/1000/bcvk/dev-1/ssh_key\n",
		"StrictHostKeyChecking no\n", "UserKnownHostsFile /dev/null\n",
		"ProxyCommand /usr/bin/podman exec -i dev bcvk-inner proxy ssh\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}

func TestFollowCopiesAndStops(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(p, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	stop := make(chan struct{})
	close(stop)
	if err := Follow(context.Background(), p, &out, stop); err != nil {
		t.Fatal(err)
	}
	if out.String() != "one\n" {
		t.Fatalf("got %q", out.String())
	}
}

func TestRemoveStateDirOnlyInsideBase(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	outside := t.TempDir()
	if err := New(nil, CurrentHost()).removeStateDir(outside); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatal("a directory outside the state base was removed")
	}
	inside, err := CurrentHost().NewStateDir("vm")
	if err != nil {
		t.Fatal(err)
	}
	if err := New(nil, CurrentHost()).removeStateDir(inside); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inside); !os.IsNotExist(err) {
		t.Fatal("state directory not removed")
	}
}

func TestPruneWarmKeepsTheMostRecentlyUsed(t *testing.T) {
	base := t.TempDir()
	for i, n := range []string{"a", "b", "c", ".tmp-in-progress"} {
		p := filepath.Join(base, n)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		tm := time.Now().Add(time.Duration(i) * time.Hour)
		_ = os.Chtimes(p, tm, tm)
	}
	pruneWarm(base, 2)
	entries, _ := os.ReadDir(base)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != ".tmp-in-progress b c" {
		t.Fatalf("left %v", names)
	}
}
