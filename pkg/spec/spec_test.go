package spec

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"4G", 4 << 30}, {"4g", 4 << 30}, {"2048M", 2048 << 20}, {"512MiB", 512 << 20},
		{"1T", 1 << 40}, {"64K", 64 << 10}, {"1024", 1024 << 20}, {"4096B", 4096}, {" 2G ", 2 << 30}, {"3GB", 3 << 30},
	} {
		got, err := ParseSize(tc.in, 1<<20)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "4Q", "G", "-1G", "1.5G", "4 G", "iB", "99999999999999999999", "9999999999T"} {
		if _, err := ParseSize(bad, 1<<20); err == nil {
			t.Errorf("ParseSize(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseMemoryMiB(t *testing.T) {
	if m, err := ParseMemoryMiB("4G"); err != nil || m != 4096 {
		t.Fatalf("4G = %d, %v", m, err)
	}
	if m, err := ParseMemoryMiB("2048"); err != nil || m != 2048 {
		t.Fatalf("2048 = %d, %v", m, err)
	}
	for _, bad := range []string{"4Q", "100M", "0", "1500K", "2T"} {
		if _, err := ParseMemoryMiB(bad); err == nil {
			t.Errorf("ParseMemoryMiB(%q) succeeded", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	s := New()
	if err := s.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	s.VCPUs = 0
	s.Accel = "hvf"
	s.Name = "has space"
	s.KernelArgs = []string{"a b"}
	err := s.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"vcpus 0", "accelerator \"hvf\"", "invalid name", "white space"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestWriteRead(t *testing.T) {
	s := New()
	s.Name = "vm1"
	s.KernelArgs = []string{"quiet", "x=y"}
	p := filepath.Join(t.TempDir(), "spec.json")
	if err := s.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "vm1" || len(got.KernelArgs) != 2 || got.AccelProbeTimeout != s.AccelProbeTimeout {
		t.Fatalf("round trip: %+v", got)
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4G", "2048", "1MiB", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s, 1<<20)
		if err == nil && n < 0 {
			t.Fatalf("negative size %d for %q", n, s)
		}
	})
}

func FuzzValidateKernelArg(f *testing.F) {
	for _, s := range []string{"quiet", "a=b c", "", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateKernelArg(s) == nil && (s == "" || strings.ContainsAny(s, " \t\n\r\x00")) {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"vm1", "-x", "a/b", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName(s) == nil && (len(s) > 63 || s == "" || strings.ContainsAny(s, "/ \t\n:=$") || s[0] == '-') {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzParseMemoryMiB(f *testing.F) {
	for _, s := range []string{"2G", "256", "1T", "100", "1K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMemoryMiB(s)
		if err == nil && (m < MinMemoryMiB || m > MaxMemoryMiB) {
			t.Fatalf("accepted %q as %d MiB", s, m)
		}
	})
}

func TestWarmValidation(t *testing.T) {
	s := New()
	s.Warm = WarmSave
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Binds = []Bind{{Host: "/a", GuestPath: "/mnt/a"}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "cannot have shares") {
		t.Fatalf("warm with a share: %v", err)
	}
	s.Binds, s.Warm = nil, "later"
	if err := s.Validate(); err == nil {
		t.Fatal("unknown warm mode accepted")
	}
}

func TestWarmMetaRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := WarmMeta{Accel: "tcg", SMBIOSCredentials: []string{"io.systemd.credential.binary:a=Yg=="}, KernelVersion: "6.1"}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadWarmMeta(dir)
	if err != nil || got.Accel != "tcg" || got.KernelVersion != "6.1" || len(got.SMBIOSCredentials) != 1 {
		t.Fatalf("%+v %v", got, err)
	}
}
