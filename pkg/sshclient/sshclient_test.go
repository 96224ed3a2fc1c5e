package sshclient

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"ls": "ls", "": "''", "exit 42": "'exit 42'", "it's": `'it'\''s'`, "$HOME": "'$HOME'", "a/b-c.d": "a/b-c.d",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}

// The remote shell must see the same words the user typed.
func TestQuoteCommandRoundTrip(t *testing.T) {
	words := []string{"printf", "%s|", "a b", "it's", "$HOME", "", "*", "\n"}
	out, err := exec.Command("sh", "-c", QuoteCommand(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "a b|it's|$HOME||*|\n|"; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestArgs(t *testing.T) {
	got := Args("/k", ProxyCommand, []string{"-v"}, "root", []string{"sh", "-c", "exit 42"})
	want := append(Options("/k", ProxyCommand), "-v", "--", "root@"+Host, "sh -c 'exit 42'")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if got := Args("/k", ProxyCommand, nil, "root", nil); got[len(got)-1] != "root@"+Host {
		t.Fatalf("no command: %q", got)
	}
}

// A command whose words look like ssh options must reach the guest as words:
// OpenSSH reads options after the destination unless "--" came first, and a
// ProxyCommand would run on bcvk's side. `ssh -G` shows how ssh parses the
// line without connecting.
func TestArgsCommandIsNotOptions(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	for _, cmd := range [][]string{
		{"-oProxyCommand=sh -c 'touch /tmp/pwned'"},
		{"-oProxyCommand=sh", "-c", "touch /tmp/pwned"},
		{"-p1"}, {"-luser"}, {"-v"},
	} {
		args := Args("/k", ProxyCommand, nil, "root", cmd)
		out, err := exec.Command("ssh", append([]string{"-G"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G %q: %v\n%s", args, err, out)
		}
		cfg := string(out)
		for _, want := range []string{"\nuser root\n", "\nport 22\n", "\nhostname " + Host + "\n", "\nproxycommand " + ProxyCommand + "\n"} {
			if !strings.Contains("\n"+cfg, want) {
				t.Errorf("command %q: ssh -G lacks %q: the command changed ssh's options", cmd, strings.TrimSpace(want))
			}
		}
		if strings.Contains(cfg, "\nloglevel DEBUG") {
			t.Errorf("command %q raised ssh's log level", cmd)
		}
	}
}

// sshd runs the user's shell as `SHELL -c COMMAND`: a command word such as
// "-v" must be the shell's command, not its option.
func TestQuoteCommandLeadingDash(t *testing.T) {
	for _, shell := range []string{"sh", "bash"} {
		if _, err := exec.LookPath(shell); err != nil {
			continue
		}
		out, err := exec.Command(shell, "-c", QuoteCommand([]string{"-v"})).CombinedOutput()
		if code := exitCode(err); code != 127 || !strings.Contains(string(out), "-v") {
			t.Errorf("%s -c %q: exit %d, %q", shell, QuoteCommand([]string{"-v"}), code, out)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
