package spec

import (
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
