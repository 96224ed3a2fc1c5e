package domain

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.xml from the current output")

func sampleMetadata() Metadata {
	return Metadata{
		Image:    "quay.io/centos-bootc/centos-bootc:stream10",
		Digest:   "sha256:" + strings.Repeat("ab", 32),
		BaseDisk: "bcvk-base-" + strings.Repeat("ab", 8) + ".qcow2",
		Install: InstallOptions{
			Filesystem: "xfs",
			RootSize:   "8G",
			DiskSize:   10 << 30,
			KernelArgs: []string{"console=ttyS0", "quiet", `foo="a <b> & c"`},
		},
		Version: "0.1.0",
		Created: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		Labels:  map[string]string{"team": "ci", "bcvk.dev/test": "lifecycle"},
	}
}

func sampleConfig(fw Firmware) Config {
	return Config{
		Name:       "bcvk-test-1",
		UUID:       "0b3c9a9e-3f43-4f9b-9b1e-5d8f2c1a7e10",
		MemoryMiB:  4096,
		VCPUs:      2,
		Type:       TypeQEMU,
		Firmware:   fw,
		Disk:       Disk{Path: "/var/lib/libvirt/images/bcvk-test-1.qcow2", Format: "qcow2"},
		SSHPort:    40022,
		Ports:      []PortForward{{HostPort: 8080, GuestPort: 80}},
		Shares:     []Share{{Source: "/srv/data", Tag: "data"}, {Source: "/var/lib/containers/storage", Tag: "hoststorage", ReadOnly: true}},
		VSock:      true,
		ConsoleLog: "/var/log/libvirt/qemu/bcvk-test-1-console.log",
		Metadata:   sampleMetadata(),
	}
}

// TestGolden compares whole documents: any change to the XML shows in review.
// Run `go test ./pkg/outer/libvirt/domain -update` after an intended change.
func TestGolden(t *testing.T) {
	slirp := sampleConfig(FirmwareBIOS)
	slirp.Name = "bcvk-slirp"
	slirp.Type = TypeKVM
	slirp.Network = NetworkSlirp
	slirp.Shares = nil
	slirp.VSock = false
	// --mount-disk-file (read-write and read-only) and --add-swap.
	extra := sampleConfig(FirmwareBIOS)
	extra.Name = "bcvk-extra"
	extra.Extra = []ExtraDisk{
		{Path: "/srv/disks/scratch.qcow2", Format: "qcow2", Serial: "scratch"},
		{Path: "/srv/disks/data.img", Format: "raw", Serial: "data", ReadOnly: true},
		{Path: "/var/lib/libvirt/images/bcvk/bcvk-swap-bcvk-extra.img", Format: "raw", Serial: "bcvk-swap"},
	}
	for _, tc := range []struct {
		file string
		c    Config
	}{
		{"bios.xml", sampleConfig(FirmwareBIOS)},
		{"uefi.xml", sampleConfig(FirmwareUEFI)},
		{"slirp-kvm.xml", slirp},
		{"extra-disks.xml", extra},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := XML(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("XML differs from %s (run with -update and review the diff):\n%s", path, got)
			}
			// libvirtxml reads back what it wrote.
			var d libvirtxml.Domain
			if err := d.Unmarshal(got); err != nil {
				t.Fatalf("libvirtxml cannot read the XML back: %v", err)
			}
			if d.Name != tc.c.Name || d.Features == nil || d.Features.ACPI == nil {
				t.Errorf("read back: name %q, features %+v", d.Name, d.Features)
			}
		})
	}
}

func TestUEFIUsesDebianOVMF(t *testing.T) {
	got, err := XML(sampleConfig(FirmwareUEFI))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<loader readonly="yes" secure="no" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd</loader>`,
		`<nvram template="/usr/share/OVMF/OVMF_VARS_4M.fd"></nvram>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in:\n%s", want, got)
		}
	}
	bios, err := XML(sampleConfig(FirmwareBIOS))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(bios, "loader") || strings.Contains(bios, "nvram") {
		t.Errorf("bios domain has a loader or nvram:\n%s", bios)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	c := sampleConfig(FirmwareUEFI)
	doc, err := XML(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMetadata(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := c.Metadata
	want.SSHPort = c.SSHPort
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

// libvirt prints the metadata back re-indented, with live state around it,
// and may print another prefix: ParseMetadata matches the namespace.
func TestParseMetadataAsLibvirtPrintsIt(t *testing.T) {
	doc := `<domain type='qemu' id='3'>
  <name>x</name>
  <metadata>
    <other:thing xmlns:other="https://example.com/other"><other:image>evil</other:image></other:thing>
    <b:instance xmlns:b="https://github.com/bcvk/bcvk/libvirt/1">
      <b:image>localhost/img:latest</b:image>
      <b:digest>sha256:` + strings.Repeat("0", 64) + `</b:digest>
      <b:version>dev</b:version>
      <b:ssh-port>2222</b:ssh-port>
      <b:created>2026-01-02T03:04:05Z</b:created>
    </b:instance>
  </metadata>
  <devices><disk type='file'><source file='/x'/></disk></devices>
</domain>`
	m, err := ParseMetadata(doc)
	if err != nil {
		t.Fatal(err)
	}
	if m.Image != "localhost/img:latest" || m.SSHPort != 2222 || m.Version != "dev" || m.Labels != nil {
		t.Errorf("got %+v", m)
	}
}

func TestParseMetadataNotOurs(t *testing.T) {
	for _, doc := range []string{
		`<domain type='kvm'><name>other</name></domain>`,
		`<domain type='kvm'><name>other</name><metadata><x:instance xmlns:x="https://example.com/"/></metadata></domain>`,
		// Our element outside <metadata> does not count.
		`<domain><description><b:instance xmlns:b="https://github.com/bcvk/bcvk/libvirt/1"/></description></domain>`,
	} {
		if _, err := ParseMetadata(doc); !errors.Is(err, ErrNotBcvk) {
			t.Errorf("want ErrNotBcvk, got %v for %s", err, doc)
		}
	}
}

func TestParseMetadataBad(t *testing.T) {
	good := func(mut func(string) string) string {
		doc, err := XML(sampleConfig(FirmwareBIOS))
		if err != nil {
			t.Fatal(err)
		}
		return mut(doc)
	}
	deep := "<domain>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</domain>"
	for name, doc := range map[string]string{
		"too large":       "<domain>" + strings.Repeat(" ", MaxDomainXML) + "</domain>",
		"not xml":         "domain",
		"truncated":       good(func(s string) string { return s[:len(s)/2] }),
		"wrong root":      `<dom><metadata/></dom>`,
		"two roots":       good(func(s string) string { return s + s }),
		"doctype":         `<!DOCTYPE domain [<!ENTITY x "y">]>` + good(func(s string) string { return s }),
		"unknown entity":  good(func(s string) string { return strings.Replace(s, "0.1.0", "&x;", 1) }),
		"too deep":        deep,
		"bad digest":      good(func(s string) string { return strings.Replace(s, "sha256:abab", "sha256:ABAB", 1) }),
		"port overflow":   good(func(s string) string { return strings.Replace(s, ">40022<", ">70000<", 1) }),
		"port zero":       good(func(s string) string { return strings.Replace(s, ">40022<", ">0<", 1) }),
		"port not number": good(func(s string) string { return strings.Replace(s, ">40022<", ">22; rm<", 1) }),
		"two images": good(func(s string) string {
			return strings.Replace(s, "<bcvk:digest>", "<bcvk:image>x</bcvk:image><bcvk:digest>", 1)
		}),
		"two instances": good(func(s string) string {
			i := strings.Index(s, "<bcvk:instance")
			j := strings.Index(s, "</bcvk:instance>") + len("</bcvk:instance>")
			return s[:j] + s[i:]
		}),
		"control char in image": good(func(s string) string {
			return strings.Replace(s, "quay.io/", "quay.io/&#x1b;[31m", 1)
		}),
		"bad label key":   good(func(s string) string { return strings.Replace(s, `key="team"`, `key="te am"`, 1) }),
		"duplicate label": good(func(s string) string { return strings.Replace(s, `key="team"`, `key="bcvk.dev/test"`, 1) }),
		"bad created":     good(func(s string) string { return strings.Replace(s, "2026-11-30T08:00:00Z", "yesterday", 1) }),
		"negative size":   good(func(s string) string { return strings.Replace(s, ">10737418240<", ">-1<", 1) }),
		"too many labels": good(func(s string) string {
			return strings.Replace(s, "</bcvk:instance>", strings.Repeat(`<bcvk:label key="k">v</bcvk:label>`, MaxLabels+1)+"</bcvk:instance>", 1)
		}),
	} {
		t.Run(name, func(t *testing.T) {
			m, err := ParseMetadata(doc)
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if errors.Is(err, ErrNotBcvk) {
				t.Fatalf("bad XML taken for a foreign domain: %v", err)
			}
		})
	}
}

func TestXMLRejectsBadConfig(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"empty name":        func(c *Config) { c.Name = "" },
		"name with slash":   func(c *Config) { c.Name = "../etc" },
		"name with space":   func(c *Config) { c.Name = "my vm" },
		"name with quote":   func(c *Config) { c.Name = `a"b` },
		"name with newline": func(c *Config) { c.Name = "a\nb" },
		"name with unicode": func(c *Config) { c.Name = "vm\u00e9" },
		"name leading dash": func(c *Config) { c.Name = "-rf" },
		"name too long":     func(c *Config) { c.Name = strings.Repeat("a", 64) },
		"bad uuid":          func(c *Config) { c.UUID = "not-a-uuid" },
		"memory zero":       func(c *Config) { c.MemoryMiB = 0 },
		"memory in bytes":   func(c *Config) { c.MemoryMiB = 4 << 30 },
		"memory overflow":   func(c *Config) { c.MemoryMiB = ^uint64(0) },
		"vcpus zero":        func(c *Config) { c.VCPUs = 0 },
		"vcpus absurd":      func(c *Config) { c.VCPUs = 1 << 20 },
		"type xen":          func(c *Config) { c.Type = "xen" },
		"type empty":        func(c *Config) { c.Type = "" },
		"firmware empty":    func(c *Config) { c.Firmware = "" },
		"bios with ovmf":    func(c *Config) { c.Firmware = FirmwareBIOS; c.OVMFCode = DefaultOVMFCode },
		"disk NUL":          func(c *Config) { c.Disk.Path = "/var/lib/a\x00b.qcow2" },
		"disk relative":     func(c *Config) { c.Disk.Path = "disk.qcow2" },
		"disk dotdot":       func(c *Config) { c.Disk.Path = "/var/lib/../../etc/shadow" },
		"disk empty":        func(c *Config) { c.Disk.Path = "" },
		"disk too long":     func(c *Config) { c.Disk.Path = "/" + strings.Repeat("a", maxPathLen) },
		"disk format vmdk":  func(c *Config) { c.Disk.Format = "vmdk" },
		"ovmf NUL":          func(c *Config) { c.Firmware = FirmwareUEFI; c.OVMFCode = "/usr/share/OVMF/\x00" },
		"nvram relative":    func(c *Config) { c.Firmware = FirmwareUEFI; c.NVRAM = "vars.fd" },
		"network bridge":    func(c *Config) { c.Network = "bridge" },
		"ssh port zero":     func(c *Config) { c.SSHPort = 0 },
		"port zero":         func(c *Config) { c.Ports = []PortForward{{HostPort: 0, GuestPort: 80}} },
		"port twice":        func(c *Config) { c.Ports = []PortForward{{HostPort: 40022, GuestPort: 80}} },
		"port zone": func(c *Config) {
			c.Ports = []PortForward{{HostAddr: netip.MustParseAddr("fe80::1%eth0"), HostPort: 1, GuestPort: 1}}
		},
		"too many ports":      func(c *Config) { c.Ports = make([]PortForward, MaxPorts+1) },
		"share relative":      func(c *Config) { c.Shares = []Share{{Source: "data", Tag: "d"}} },
		"share NUL":           func(c *Config) { c.Shares = []Share{{Source: "/a\x00", Tag: "d"}} },
		"share tag too long":  func(c *Config) { c.Shares = []Share{{Source: "/a", Tag: strings.Repeat("t", 37)}} },
		"share tag comma":     func(c *Config) { c.Shares = []Share{{Source: "/a", Tag: "a,b"}} },
		"share tag twice":     func(c *Config) { c.Shares = []Share{{Source: "/a", Tag: "t"}, {Source: "/b", Tag: "t"}} },
		"console log missing": func(c *Config) { c.ConsoleLog = "" },
		"no image":            func(c *Config) { c.Metadata.Image = "" },
		"image with newline":  func(c *Config) { c.Metadata.Image = "a\nb" },
		"bad digest":          func(c *Config) { c.Metadata.Digest = "sha256:xyz" },
		"no version":          func(c *Config) { c.Metadata.Version = "" },
		"no created":          func(c *Config) { c.Metadata.Created = time.Time{} },
		"label key quote":     func(c *Config) { c.Metadata.Labels = map[string]string{`a"b`: "v"} },
		"label value NUL":     func(c *Config) { c.Metadata.Labels = map[string]string{"a": "\x00"} },
		"karg invalid utf8":   func(c *Config) { c.Metadata.Install.KernelArgs = []string{"\xff"} },
		"base disk path":      func(c *Config) { c.Metadata.BaseDisk = "../base.qcow2" },
		"filesystem odd":      func(c *Config) { c.Metadata.Install.Filesystem = "xfs -f" },
		"negative disk size":  func(c *Config) { c.Metadata.Install.DiskSize = -1 },
		"extra disk relative": func(c *Config) { c.Extra = []ExtraDisk{{Path: "d.img", Format: "raw", Serial: "d"}} },
		"extra disk vmdk":     func(c *Config) { c.Extra = []ExtraDisk{{Path: "/d.img", Format: "vmdk", Serial: "d"}} },
		"extra serial long": func(c *Config) {
			c.Extra = []ExtraDisk{{Path: "/d.img", Format: "raw", Serial: strings.Repeat("s", 21)}}
		},
		"extra serial space": func(c *Config) { c.Extra = []ExtraDisk{{Path: "/d.img", Format: "raw", Serial: "a b"}} },
		"extra serial twice": func(c *Config) {
			c.Extra = []ExtraDisk{{Path: "/a.img", Format: "raw", Serial: "d"}, {Path: "/b.img", Format: "raw", Serial: "d"}}
		},
		"too many extra disks": func(c *Config) {
			for i := range MaxExtraDisks + 1 {
				c.Extra = append(c.Extra, ExtraDisk{Path: "/d.img", Format: "raw", Serial: fmt.Sprintf("d%d", i)})
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := sampleConfig(FirmwareBIOS)
			mut(&c)
			got, err := XML(c)
			if err == nil {
				t.Fatalf("accepted:\n%s", got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
		})
	}
}

func TestPortOrderDoesNotMatter(t *testing.T) {
	a := sampleConfig(FirmwareBIOS)
	a.Ports = []PortForward{{HostPort: 9000, GuestPort: 90}, {HostPort: 8000, GuestPort: 80}}
	b := sampleConfig(FirmwareBIOS)
	b.Ports = []PortForward{{HostPort: 8000, GuestPort: 80}, {HostPort: 9000, GuestPort: 90}}
	xa, err := XML(a)
	if err != nil {
		t.Fatal(err)
	}
	xb, err := XML(b)
	if err != nil {
		t.Fatal(err)
	}
	if xa != xb {
		t.Error("the order of --port flags changes the XML")
	}
}

func FuzzParseMetadata(f *testing.F) {
	doc, err := XML(sampleConfig(FirmwareUEFI))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Add(`<domain><metadata/></domain>`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMetadata(s)
		if err != nil {
			return
		}
		// Whatever is accepted must be valid enough to be written again.
		if err := m.validate(); err != nil {
			t.Fatalf("accepted metadata that does not validate: %v", err)
		}
	})
}
