package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		in, host, guest string
	}{
		{"/srv/data", "/srv/data", "/mnt/data"},
		{"data", "/home/u/data", "/mnt/data"},
		{"./data/:/var/lib/x", "/home/u/data", "/var/lib/x"},
	} {
		b, err := ParseBind(tc.in, "/home/u", true)
		if err != nil || b.Host != tc.host || b.GuestPath != tc.guest || !b.ReadOnly {
			t.Errorf("%q: %+v %v", tc.in, b, err)
		}
	}
	for _, bad := range []string{"", ":/mnt/x", "/a:relative", "/a:/proc/x", "/a:/", "/a:/run/x", "/a,b", "/a:/mnt/a b", "/:"} {
		if _, err := ParseBind(bad, "/home/u", false); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A read-write share of the host's root is refused, also through a
// symlink; read-only it is allowed (with a guest path).
func TestParseBindRefusesWritableHostRoot(t *testing.T) {
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink("/", link); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"/:/mnt/host", "/../:/mnt/host", link + ":/mnt/host"} {
		if _, err := ParseBind(in, "/home/u", false); err == nil || !strings.Contains(err.Error(), "--ro-bind") {
			t.Errorf("read-write %q: %v", in, err)
		}
		if b, err := ParseBind(in, "/home/u", true); err != nil || !b.ReadOnly {
			t.Errorf("read-only %q: %+v %v", in, b, err)
		}
	}
}

func TestValidateBindsDuplicates(t *testing.T) {
	s := New()
	s.Binds = []Bind{{GuestPath: "/mnt/a"}, {GuestPath: "/mnt/a"}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "two shares") {
		t.Fatalf("got %v", err)
	}
}

func FuzzParseBind(f *testing.F) {
	for _, s := range []string{"/a", "a:/mnt/b", ":", "/x:/y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBind(s, "/cwd", false)
		if err == nil && (!strings.HasPrefix(b.Host, "/") || !strings.HasPrefix(b.GuestPath, "/") || strings.Contains(b.Host, ",")) {
			t.Fatalf("accepted %q as %+v", s, b)
		}
	})
}
