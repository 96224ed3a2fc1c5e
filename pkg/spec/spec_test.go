package spec

import (
	"fmt"
	"math/big"
	"path/filepath"
	"strconv"
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

// An accepted size is exactly its digits times its unit (checked with big
// integers, so an overflow cannot hide), and reads back the same in bytes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4G", "2048", "1MiB", "x", "", "9223372036854775807B", "4611686018427387904B", "4194304T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s, 1<<20)
		if err != nil {
			return
		}
		m := sizeRE.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
		if m == nil {
			t.Fatalf("accepted %q, which is not a size", s)
		}
		unit := map[string]int64{"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m[2]]
		if m[2] == "" && m[3] == "B" {
			unit = 1
		}
		want, _ := new(big.Int).SetString(m[1], 10)
		want.Mul(want, big.NewInt(unit))
		if want.Cmp(big.NewInt(n)) != 0 {
			t.Fatalf("%q: got %d, want %s", s, n, want)
		}
		if back, err := ParseSize(strconv.FormatInt(n, 10)+"B", 1); err != nil || back != n {
			t.Fatalf("%q = %d bytes does not read back: %d %v", s, n, back, err)
		}
	})
}

// kernelArgs splits a command line the way the Linux kernel does
// (lib/cmdline.c next_arg): at white space outside double quotes.
func kernelArgs(cmdline string) []string {
	var out []string
	var cur strings.Builder
	inQuote, started := false, false
	for i := 0; i < len(cmdline); i++ {
		c := cmdline[i]
		if !inQuote && (c == ' ' || (c >= '\t' && c <= '\r')) {
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
			continue
		}
		if c == '"' {
			inQuote = !inQuote
		}
		cur.WriteByte(c)
		started = true
	}
	if started {
		out = append(out, cur.String())
	}
	return out
}

// An accepted argument is one argument to the kernel, and leaves the
// arguments around it alone.
func FuzzValidateKernelArg(f *testing.F) {
	for _, s := range []string{"quiet", "a=b c", "", "x\x00", "a=\"b", "a\vb", "a=\"b c\"", "opt=\"x\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateKernelArg(s) != nil {
			return
		}
		got := kernelArgs("console=ttyS0 " + s + " last=1")
		if len(got) != 3 || got[1] != s || got[2] != "last=1" {
			t.Fatalf("accepted %q, which the kernel reads as %q", s, got)
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
	// Shares are hot-plugged into the saved VM's empty ports: as many as it has.
	for i := 0; i < WarmSharePorts; i++ {
		s.Binds = append(s.Binds, Bind{Host: "/a", GuestPath: fmt.Sprintf("/mnt/a%d", i)})
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("warm with %d shares: %v", len(s.Binds), err)
	}
	s.Binds = append(s.Binds, Bind{Host: "/a", GuestPath: "/mnt/more"})
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("warm with %d shares: %v", len(s.Binds), err)
	}
	s.Binds = nil
	s.Disks = []Disk{{File: "d.raw", Format: FormatRaw, Serial: "d"}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "cannot have disks") {
		t.Fatalf("warm with a disk: %v", err)
	}
	s.Disks, s.Warm = nil, "later"
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

func TestValidateJournal(t *testing.T) {
	for path, ok := range map[string]bool{"": true, "/tmp/j.log": true, "j.log": false, "/tmp/../j.log": false, "/tmp/": false} {
		s := New()
		s.Journal = path
		if err := s.Validate(); (err == nil) != ok {
			t.Errorf("%q: %v", path, err)
		}
	}
}
