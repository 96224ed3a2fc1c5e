package storage

import (
	"reflect"
	"strings"
	"testing"
)

// The XML documents are compared whole: any change shows in review.
func TestPoolXML(t *testing.T) {
	got, err := PoolXML("bcvk", PoolDir("bcvk"))
	if err != nil {
		t.Fatal(err)
	}
	want := `<pool type="dir">
  <name>bcvk</name>
  <target>
    <path>/var/lib/libvirt/images/bcvk</path>
  </target>
</pool>`
	if got != want {
		t.Errorf("PoolXML:\n%s\nwant:\n%s", got, want)
	}
}

func TestBaseXML(t *testing.T) {
	got, err := BaseXML("bcvk-base-0123456789abcdef.qcow2", 4<<30)
	if err != nil {
		t.Fatal(err)
	}
	want := `<volume>
  <name>bcvk-base-0123456789abcdef.qcow2</name>
  <capacity unit="bytes">4294967296</capacity>
  <target>
    <format type="qcow2"></format>
  </target>
</volume>`
	if got != want {
		t.Errorf("BaseXML:\n%s\nwant:\n%s", got, want)
	}
}

func TestRawXML(t *testing.T) {
	got, err := RawXML("bcvk-base-0123456789abcdef.json", 123)
	if err != nil {
		t.Fatal(err)
	}
	want := `<volume>
  <name>bcvk-base-0123456789abcdef.json</name>
  <capacity unit="bytes">123</capacity>
  <target>
    <format type="raw"></format>
  </target>
</volume>`
	if got != want {
		t.Errorf("RawXML:\n%s\nwant:\n%s", got, want)
	}
}

func TestCloneXML(t *testing.T) {
	got, err := CloneXML("bcvk-vm-web.qcow2", 10<<30, "/var/lib/libvirt/images/bcvk/bcvk-base-0123456789abcdef.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	// The backing format must be in the overlay: libvirt refuses to probe it.
	want := `<volume>
  <name>bcvk-vm-web.qcow2</name>
  <capacity unit="bytes">10737418240</capacity>
  <target>
    <format type="qcow2"></format>
  </target>
  <backingStore>
    <path>/var/lib/libvirt/images/bcvk/bcvk-base-0123456789abcdef.qcow2</path>
    <format type="qcow2"></format>
  </backingStore>
</volume>`
	if got != want {
		t.Errorf("CloneXML:\n%s\nwant:\n%s", got, want)
	}
}

// A backing path comes from libvirt (StorageVolGetPath): whatever is in it
// must stay text in the document.
func TestCloneXMLEscapes(t *testing.T) {
	got, err := CloneXML("bcvk-vm-x.qcow2", 1<<30, `/pools/a&b/<c>".qcow2`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "<path>/pools/a&amp;b/&lt;c&gt;&#34;.qcow2</path>") {
		t.Errorf("path not escaped:\n%s", got)
	}
}

func sampleKey() BaseKey {
	return NewBaseKey(BaseKey{
		Image:      "quay.io/centos-bootc/centos-bootc:stream10",
		Digest:     "sha256:" + strings.Repeat("ab", 32),
		ImageID:    strings.Repeat("cd", 32),
		DiskSize:   10 << 30,
		Filesystem: "xfs",
		RootSize:   "8G",
		KernelArgs: []string{"console=ttyS0", "quiet"},
	})
}

// The hash names bases already in users' pools: a change to it (a field
// renamed, reordered or retagged) orphans every one of them, so it is
// pinned. Bump keyVersion and this value together, deliberately. The value
// was checked apart from Go: the first 8 bytes of the sha256 of the compact
// JSON of the key with "image" set to "" (Python's json.dumps with
// separators=(",", ":") and the fields in struct order).
func TestBaseKeyHashStable(t *testing.T) {
	k := sampleKey()
	if k.Version != 2 {
		t.Fatalf("NewBaseKey set version %d, want 2", k.Version)
	}
	const want = "cce72b6adf7c44b4"
	if got := k.Hash(); got != want {
		t.Errorf("Hash() = %s, want %s (a changed hash makes every existing base unused)", got, want)
	}
	if got := k.Hash(); got != k.Hash() {
		t.Errorf("Hash() not deterministic: %s", got)
	}
	if got, want := k.BaseName(), "bcvk-base-"+want+".qcow2"; got != want {
		t.Errorf("BaseName() = %s, want %s", got, want)
	}
	if got := keyName(k.BaseName()); got != "bcvk-base-"+want+".json" {
		t.Errorf("keyName = %s", got)
	}
}

// Two tags of one digest share a base: the reference is not in the hash,
// and the caller's key is not changed by hashing it.
func TestBaseKeyHashIgnoresImage(t *testing.T) {
	a, b := sampleKey(), sampleKey()
	b.Image = "localhost/other:tag"
	if a.Hash() != b.Hash() {
		t.Errorf("Image changed the hash: %s vs %s", a.Hash(), b.Hash())
	}
	_ = b.Hash()
	if b.Image != "localhost/other:tag" {
		t.Errorf("Hash changed the key's Image to %q", b.Image)
	}
}

// Every field but Image must change the hash (the disk-cache lesson: a new
// --disk-size or --filesystem must not reuse the old disk). Walking the
// struct by reflection makes a field added later fail here until it is
// thought about.
func TestBaseKeyHashCoversEveryOtherField(t *testing.T) {
	base := sampleKey()
	h0 := base.Hash()
	typ := reflect.TypeOf(base)
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			k := sampleKey()
			k.KernelArgs = append([]string(nil), base.KernelArgs...)
			v := reflect.ValueOf(&k).Elem().Field(i)
			switch v.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Int, reflect.Int64:
				v.SetInt(v.Int() + 1)
			case reflect.Slice:
				v.Set(reflect.Append(v, reflect.ValueOf("extra")))
			default:
				t.Fatalf("field %s of kind %s: teach this test to change it", f.Name, v.Kind())
			}
			changed := k.Hash() != h0
			if f.Name == "Image" {
				if changed {
					t.Errorf("Image changed the hash")
				}
				return
			}
			if !changed {
				t.Errorf("changing %s left the hash at %s", f.Name, h0)
			}
		})
	}
	// Order of kernel arguments matters to the installed system.
	k := sampleKey()
	k.KernelArgs = []string{"quiet", "console=ttyS0"}
	if k.Hash() == h0 {
		t.Errorf("reordered kernel arguments kept the hash")
	}
}

func TestIsBaseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"bcvk-base-0123456789abcdef.qcow2", true},
		{sampleKey().BaseName(), true},
		{"bcvk-base-0123456789abcdef.json", false}, // its key file
		{"bcvk-vm-web.qcow2", false},
		{"bcvk-base-0123456789abcdef.qcow2.part", false},
		{"xbcvk-base-0123456789abcdef.qcow2", false},
		{"bcvk-base-0123456789abcdef.raw", false},
		{"other.qcow2", false},
		{"", false},
	} {
		if got := IsBaseName(tc.name); got != tc.want {
			t.Errorf("IsBaseName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCloneName(t *testing.T) {
	for _, tc := range []struct{ vm, want string }{
		{"web", "bcvk-vm-web.qcow2"},
		{"bcvk-sample-bootc-a1b2c3", "bcvk-vm-bcvk-sample-bootc-a1b2c3.qcow2"},
		{"a.b_c", "bcvk-vm-a.b_c.qcow2"},
	} {
		got := CloneName(tc.vm)
		if got != tc.want {
			t.Errorf("CloneName(%q) = %q, want %q", tc.vm, got, tc.want)
		}
		// A clone is never taken for a base (prune would delete it).
		if IsBaseName(got) {
			t.Errorf("clone %q counts as a base", got)
		}
	}
}

func TestValidPool(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"bcvk", true},
		{DefaultPool, true},
		{"bcvk-bench-12345", true},
		{"a", true},
		{"Pool_1.x", true},
		{"0pool", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-pool", false},
		{".pool", false},
		{"_pool", false},
		{"po/ol", false},
		{"..", false},
		{"po ol", false},
		{"pool\n", false},
		{"pöol", false},
		{"pool;rm", false},
	} {
		err := ValidPool(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidPool(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestPoolDir(t *testing.T) {
	if got := PoolDir("bcvk-bench-1"); got != "/var/lib/libvirt/images/bcvk-bench-1" {
		t.Errorf("PoolDir = %s", got)
	}
}

func TestSwapXML(t *testing.T) {
	got, err := SwapXML(SwapName("web"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	// allocation 0: libvirt makes the file sparse instead of writing it all.
	want := `<volume>
  <name>bcvk-swap-web.img</name>
  <allocation unit="bytes">0</allocation>
  <capacity unit="bytes">1073741824</capacity>
  <target>
    <format type="raw"></format>
  </target>
</volume>`
	if got != want {
		t.Errorf("SwapXML:\n%s\nwant:\n%s", got, want)
	}
	if IsBaseName(SwapName("web")) || SwapName("web") == CloneName("web") {
		t.Errorf("the swap volume's name %q is taken for another kind", SwapName("web"))
	}
}
