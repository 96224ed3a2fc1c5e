package cli

import (
	"io"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	m, err := parseLabels([]string{"a=1", "b=x=y", "c="})
	if err != nil || m["a"] != "1" || m["b"] != "x=y" || m["c"] != "" {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"noequals", "=v", "bcvk.name=x", "a b=1"} {
		if _, err := parseLabels([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTakesValue(t *testing.T) {
	if !takesValue([]string{"-L", "8080:localhost:80"}) {
		t.Fatal("-L takes a value")
	}
	if takesValue([]string{"-v", "uname"}) {
		t.Fatal("-v takes no value")
	}
}

func TestSSHUsage(t *testing.T) {
	code, _, errs := run("ephemeral", "ssh")
	if code != 2 || !strings.Contains(errs, "needs the NAME") {
		t.Fatalf("%d %q", code, errs)
	}
	code, _, errs = run("ephemeral", "ssh", "vm", "-v", "uname")
	if code != 2 || !strings.Contains(errs, `after "--"`) {
		t.Fatalf("%d %q", code, errs)
	}
}

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ephemeral", "run"}, "needs IMAGE"},
		{[]string{"ephemeral", "run", "-d", "--console", "img"}, "--console needs the foreground"},
		{[]string{"ephemeral", "run", "--label", "bcvk.x=1", "img"}, "bcvk's own"},
		{[]string{"ephemeral", "rm"}, "at least one VM"},
		{[]string{"ephemeral", "logs"}, "the NAME of a VM"},
		{[]string{"run-ephemeral", "--memory", "4Q", "img"}, `invalid size "4Q"`},
	} {
		code, _, errs := run(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"a=b", "bcvk.x=1", "=v", "k", "a b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseLabels([]string{s})
		if err != nil {
			return
		}
		for k := range m {
			if k == "" || strings.HasPrefix(k, "bcvk.") || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("accepted label key %q from %q", k, s)
			}
		}
	})
}

func TestTakeGlobalsBeforeSSH(t *testing.T) {
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	ssh, _, err := root.Find([]string{"ephemeral", "ssh"})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := takeGlobals(ssh, []string{"-q", "--log-level", "debug", "--runner-image=r:1", "vm", "-o", "X=1", "--", "true"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rest, " ") != "vm -o X=1 -- true" {
		t.Fatalf("rest %q", rest)
	}
	if v, _ := root.PersistentFlags().GetString("runner-image"); v != "r:1" {
		t.Fatalf("runner image %q", v)
	}
	if q, _ := root.PersistentFlags().GetBool("quiet"); !q {
		t.Fatal("-q was not applied")
	}
	if _, err := takeGlobals(ssh, []string{"--log-level"}); err == nil {
		t.Fatal("a global flag without its value was accepted")
	}
}
