package vms

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/bcvk/bcvk/pkg/credential"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/conn"
	"github.com/bcvk/bcvk/pkg/sshkey"
)

func TestState(t *testing.T) {
	for _, tc := range []struct {
		s    golibvirt.DomainState
		want string
	}{
		{golibvirt.DomainNostate, "no state"},
		{golibvirt.DomainRunning, "running"},
		{golibvirt.DomainBlocked, "idle"},
		{golibvirt.DomainPaused, "paused"},
		{golibvirt.DomainShutdown, "in shutdown"},
		{golibvirt.DomainShutoff, "shut off"},
		{golibvirt.DomainCrashed, "crashed"},
		{golibvirt.DomainPmsuspended, "suspended"},
		{99, "no state"},
		{-1, "no state"},
	} {
		if got := State(int32(tc.s)); got != tc.want {
			t.Errorf("State(%d) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestUUIDString(t *testing.T) {
	u := golibvirt.UUID{0x0b, 0x3c, 0x9a, 0x9e, 0x3f, 0x43, 0x4f, 0x9b, 0x9b, 0x1e, 0x5d, 0x8f, 0x2c, 0x1a, 0x7e, 0x10}
	if got, want := uuidString(u), "0b3c9a9e-3f43-4f9b-9b1e-5d8f2c1a7e10"; got != want {
		t.Errorf("uuidString = %s, want %s", got, want)
	}
	// Leading zeros are kept in every group.
	if got, want := uuidString(golibvirt.UUID{}), "00000000-0000-0000-0000-000000000000"; got != want {
		t.Errorf("uuidString(zero) = %s, want %s", got, want)
	}
	// What newUUID makes reads back the same through libvirt's bytes.
	s, err := newUUID()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 {
		t.Fatalf("newUUID() = %q: %v", s, err)
	}
	var u2 golibvirt.UUID
	copy(u2[:], raw)
	if got := uuidString(u2); got != s {
		t.Errorf("uuidString(newUUID bytes) = %s, want %s", got, s)
	}
	if s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
		t.Errorf("newUUID() = %s: not a version 4, variant 1 UUID", s)
	}
}

func TestDefaultKeyDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	d, err := DefaultKeyDir()
	if err != nil {
		t.Fatal(err)
	}
	if d != "/data/bcvk/libvirt/keys" {
		t.Errorf("with XDG_DATA_HOME: %s", d)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, err = DefaultKeyDir(); err != nil {
		t.Fatal(err)
	}
	if d != "/home/u/.local/share/bcvk/libvirt/keys" {
		t.Errorf("without XDG_DATA_HOME: %s", d)
	}
	const id = "0b3c9a9e-3f43-4f9b-9b1e-5d8f2c1a7e10"
	if got := d.Private(id); got != "/home/u/.local/share/bcvk/libvirt/keys/"+id+"/id_ed25519" {
		t.Errorf("Private = %s", got)
	}
}

func TestKeyDirRemove(t *testing.T) {
	root := t.TempDir()
	k := KeyDir(filepath.Join(root, "keys"))
	const id = "0b3c9a9e-3f43-4f9b-9b1e-5d8f2c1a7e10"
	if err := os.MkdirAll(filepath.Dir(k.Private(id)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.Private(id), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Something beside the key directory that an odd uuid could reach.
	victim := filepath.Join(root, "victim")
	if err := os.MkdirAll(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, odd := range []string{"", ".", "..", "../victim", "/", root, "a/b", "x.y"} {
		if err := k.Remove(odd); err != nil {
			t.Errorf("Remove(%q) = %v, want nil (refused quietly)", odd, err)
		}
	}
	for _, p := range []string{string(k), victim, k.Private(id)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("an odd uuid removed %s: %v", p, err)
		}
	}
	if err := k.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(k.Private(id))); !os.IsNotExist(err) {
		t.Errorf("key directory still there after Remove: %v", err)
	}
	if _, err := os.Stat(string(k)); err != nil {
		t.Errorf("Remove took the parent too: %v", err)
	}
	// Missing is fine.
	if err := k.Remove(id); err != nil {
		t.Errorf("Remove of a missing key: %v", err)
	}
}

// decodeCred splits an SMBIOS credential into its name and content.
func decodeCred(t *testing.T, v string) (string, string) {
	t.Helper()
	if err := credential.ValidSMBIOS(v); err != nil {
		t.Fatalf("credential not in the form QEMU gets: %v", err)
	}
	rest := strings.TrimPrefix(v, "io.systemd.credential.binary:")
	name, b64, ok := strings.Cut(rest, "=")
	if !ok {
		t.Fatalf("no '=' in %q", v)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return name, string(raw)
}

func TestCredentials(t *testing.T) {
	pair, err := sshkey.Generate("bcvk-libvirt-test")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credentials(pair.Public, []Bind{
		{Host: "/srv/data", Guest: "/mnt/data"},
		{Host: "/srv/site", Guest: "/var/www", ReadOnly: true},
	}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 {
		t.Fatalf("got %d credentials, want tmpfiles.extra and fstab.extra: %q", len(creds), creds)
	}

	name, tmpfiles := decodeCred(t, creds[0])
	if name != "tmpfiles.extra" {
		t.Errorf("first credential %q, want tmpfiles.extra", name)
	}
	var sawKey bool
	for _, line := range strings.Split(strings.TrimSuffix(tmpfiles, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Errorf("short tmpfiles line %q", line)
			continue
		}
		if f[1] != credential.AuthorizedKeysFile("root") {
			continue
		}
		sawKey = true
		if f[0] != "f+~" || f[2] != "0644" || f[3] != "root" || f[4] != "root" || len(f) != 7 {
			t.Errorf("authorized_keys line %q", line)
			continue
		}
		content, err := base64.StdEncoding.DecodeString(f[6])
		if err != nil {
			t.Fatal(err)
		}
		if string(content) != pair.Public+"\n" {
			t.Errorf("authorized key %q, want the public key %q", content, pair.Public)
		}
	}
	if !sawKey {
		t.Errorf("no line for %s in:\n%s", credential.AuthorizedKeysFile("root"), tmpfiles)
	}
	// Nothing of the private key reaches the guest (nor the domain XML,
	// where the credentials are visible to anyone who can read it).
	privBody := privateKeyBody(t, pair.Private)
	for _, c := range creds {
		_, text := decodeCred(t, c)
		if strings.Contains(text, "PRIVATE KEY") || strings.Contains(c, "PRIVATE") ||
			strings.Contains(text, privBody) || strings.Contains(decodeAllB64(text), privBody) {
			t.Errorf("a credential carries the private key:\n%s", text)
		}
	}

	name, fstab := decodeCred(t, creds[1])
	if name != "fstab.extra" {
		t.Errorf("second credential %q, want fstab.extra", name)
	}
	want := "bcvk-bind-0 /mnt/data virtiofs rw,nofail 0 0\n" +
		"bcvk-bind-1 /var/www virtiofs ro,nofail 0 0\n" +
		"/dev/disk/by-id/virtio-bcvk-swap none swap defaults,nofail 0 0\n"
	if fstab != want {
		t.Errorf("fstab.extra:\n%s\nwant:\n%s", fstab, want)
	}
}

// privateKeyBody is the base64 body of the PEM, joined.
func privateKeyBody(t *testing.T, pem []byte) string {
	t.Helper()
	var body strings.Builder
	for _, l := range strings.Split(string(pem), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			body.WriteString(l)
		}
	}
	if body.Len() < 40 {
		t.Fatalf("odd private key PEM %q", pem)
	}
	// A middle slice: line breaks and padding differ between encodings.
	return body.String()[8:40]
}

// decodeAllB64 decodes every base64-looking word of text (the tmpfiles
// contents are base64) and joins the results.
func decodeAllB64(text string) string {
	var out strings.Builder
	for _, w := range strings.Fields(text) {
		if b, err := base64.StdEncoding.DecodeString(w); err == nil {
			out.Write(b)
			out.WriteByte('\n')
		}
	}
	return out.String()
}

func TestCredentialsWithoutBinds(t *testing.T) {
	creds, err := credentials("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv0 c", nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 {
		t.Fatalf("got %d credentials without shares, want only tmpfiles.extra: %q", len(creds), creds)
	}
	if name, _ := decodeCred(t, creds[0]); name != "tmpfiles.extra" {
		t.Errorf("credential %q", name)
	}
}

func writeFile(t *testing.T, b []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestQcow2Size(t *testing.T) {
	// A qcow2 v3 header as far as bcvk reads it: magic, version, backing
	// file offset and size, cluster bits, then the virtual size at 24.
	h := make([]byte, 104)
	copy(h, "QFI\xfb")
	binary.BigEndian.PutUint32(h[4:], 3)
	binary.BigEndian.PutUint32(h[20:], 16)
	binary.BigEndian.PutUint64(h[24:], 10<<30)
	got, err := qcow2Size(writeFile(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if got != 10<<30 {
		t.Errorf("qcow2Size = %d, want %d", got, uint64(10<<30))
	}

	// Exactly the 32 bytes read are enough.
	if got, err := qcow2Size(writeFile(t, h[:32])); err != nil || got != 10<<30 {
		t.Errorf("32-byte header: %d, %v", got, err)
	}

	raw := make([]byte, 4096)
	copy(raw, "\xebc\x90") // a boot sector, as in a raw disk
	if _, err := qcow2Size(writeFile(t, raw)); err == nil || !strings.Contains(err.Error(), "not a qcow2") {
		t.Errorf("raw disk: err = %v, want 'not a qcow2 file'", err)
	}
	if _, err := qcow2Size(writeFile(t, h[:20])); err == nil {
		t.Errorf("a header cut short: no error")
	}
	if _, err := qcow2Size(writeFile(t, nil)); err == nil {
		t.Errorf("an empty file: no error")
	}
}

func TestShareTag(t *testing.T) {
	for i, want := range map[int]string{0: "bcvk-bind-0", 1: "bcvk-bind-1", 12: "bcvk-bind-12"} {
		if got := shareTag(i); got != want {
			t.Errorf("shareTag(%d) = %q, want %q", i, got, want)
		}
	}
	// virtio-fs tags are at most 36 bytes.
	if n := len(shareTag(1 << 30)); n > 36 {
		t.Errorf("shareTag too long: %d bytes", n)
	}
}

func TestProxyCommand(t *testing.T) {
	for _, tc := range []struct {
		self, uri string
		port      uint16
		want      string
	}{
		{"/usr/bin/bcvk", "qemu:///system", 40022,
			"/usr/bin/bcvk libvirt --connect qemu:///system proxy 40022"},
		{"/usr/bin/bcvk", "qemu+ssh://root@server:2222/system", 22,
			"/usr/bin/bcvk libvirt --connect qemu+ssh://root@server:2222/system proxy 22"},
		// '?' and '&' are the shell's: quoted.
		{"/usr/bin/bcvk", "qemu+ssh://u@h/system?keyfile=/k&no_verify=1", 20000,
			"/usr/bin/bcvk libvirt --connect 'qemu+ssh://u@h/system?keyfile=/k&no_verify=1' proxy 20000"},
		// '%' is ssh's token character: doubled, quoted or not.
		{"/usr/bin/bcvk", "qemu+ssh://u@h/system?keyfile=/my%20key", 20000,
			"/usr/bin/bcvk libvirt --connect 'qemu+ssh://u@h/system?keyfile=/my%%20key' proxy 20000"},
		{"/opt/a%b/bcvk", "qemu:///system", 1,
			"/opt/a%%b/bcvk libvirt --connect qemu:///system proxy 1"},
		{"/home/j o'neil/bin/bcvk", "qemu:///system", 65535,
			`'/home/j o'\''neil/bin/bcvk' libvirt --connect qemu:///system proxy 65535`},
	} {
		got := ProxyCommand(tc.self, tc.uri, tc.port)
		if got != tc.want {
			t.Errorf("ProxyCommand(%q, %q, %d):\n got %s\nwant %s", tc.self, tc.uri, tc.port, got, tc.want)
		}
	}
}

// What ssh hands to the shell (%% back to %) must give back the words.
func TestProxyCommandRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	self := "/tmp/it's a %p dir/bcvk"
	uri := "qemu+ssh://u@h:22/system?keyfile=/a%20b&known_hosts=/k h$HOME`x`"
	pc := ProxyCommand(self, uri, 4242)
	expanded := strings.ReplaceAll(pc, "%%", "%")
	// printf prints the words the shell reads, the program's path first.
	out, err := exec.Command(sh, "-c", `printf '%s\0' `+expanded).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	want := []string{self, "libvirt", "--connect", uri, "proxy", "4242"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the shell read %q, want %q", got, want)
	}
	if strings.Contains(strings.ReplaceAll(pc, "%%", ""), "%") {
		t.Errorf("a single %% left in %s: ssh would expand it", pc)
	}
}

func TestHostIsLocal(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"qemu:///system", true},
		{"qemu:///session", true},
		{"qemu+unix:///system", true},
		{"qemu+tcp://127.0.0.1/system", true},
		{"qemu+tcp://127.0.0.1:16510/system", true},
		{"qemu+tcp://127.1.2.3/system", true},
		{"qemu+tcp://localhost/system", true},
		{"qemu+ssh://root@LocalHost/system", true},
		{"qemu+tcp://[::1]:16509/system", true},
		{"qemu+ssh://root@127.0.0.1:2222/system", true},
		{"qemu+ssh://root@server/system", false},
		{"qemu+tcp://10.0.0.1/system", false},
		{"qemu+tcp://[fe80::1]/system", false},
		{"qemu+ssh://localhost.example.com/system", false},
		{"qemu+tcp://0.0.0.0/system", false},
	} {
		u, err := conn.ParseURI(tc.uri)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tc.uri, err)
			continue
		}
		if got := HostIsLocal(u); got != tc.want {
			t.Errorf("HostIsLocal(%s) = %v, want %v", tc.uri, got, tc.want)
		}
	}
}

func TestTmpfilesEscape(t *testing.T) {
	in := "[storage]\ndriver = \"overlay\"\n# a\\b\tc\x01\n"
	want := `[storage]\ndriver = "overlay"\n# a\\b\x09c\x01\n`
	if got := tmpfilesEscape(in); got != want || strings.ContainsAny(got, "\n\t") {
		t.Errorf("tmpfilesEscape = %q, want %q", got, want)
	}
}

// rm finds the clone and the swap volume by the domain's disks; the user's
// disk files are neither.
func TestDiskPathsOf(t *testing.T) {
	x := `<domain type="qemu"><name>v</name><devices>
  <disk type="file" device="disk"><source file="/pool/bcvk-vm-v.qcow2"/><target dev="vda" bus="virtio"/></disk>
  <disk type="file" device="disk"><source file="/home/u/data.img"/><target dev="vdb" bus="virtio"/><serial>data</serial></disk>
  <disk type="file" device="disk"><source file="/pool/bcvk-swap-v.img"/><target dev="vdc" bus="virtio"/><serial>bcvk-swap</serial></disk>
</devices></domain>`
	clone, swap := diskPathsOf(x)
	if clone != "/pool/bcvk-vm-v.qcow2" || swap != "/pool/bcvk-swap-v.img" {
		t.Errorf("diskPathsOf: clone %q, swap %q", clone, swap)
	}
	noSwap := strings.Replace(x, "<serial>bcvk-swap</serial>", "", 1)
	if _, swap := diskPathsOf(noSwap); swap != "" {
		t.Errorf("diskPathsOf without a swap disk: swap %q", swap)
	}
}
