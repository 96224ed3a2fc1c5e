package sshclient

import (
	"os/exec"
	"reflect"
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
	got := Args("/k", 2222, []string{"-v"}, "root", []string{"sh", "-c", "exit 42"})
	want := append(Options("/k", 2222), "-v", "root@127.0.0.1", "sh -c 'exit 42'")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if got := Args("/k", 2222, nil, "root", nil); got[len(got)-1] != "root@127.0.0.1" {
		t.Fatalf("no command: %q", got)
	}
}
