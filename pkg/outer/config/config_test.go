package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sample = `# bcvk settings
[defaults]
memory = "2G"
karg = ["console=ttyS0"]
runner-image = "localhost/runner:file"

[profiles.big]
memory = 8192
vcpus = 4
publish = [
  "8080:80",
]
bind = ["/srv/data:/mnt/data"]

[profiles."tcg.dots"]
accel = "tcg"
timeout = "5m"
ssh-transport = 'vsock'

[profiles.inline]
x = { }
`

func TestParse(t *testing.T) {
	f, err := Parse("/c.toml", []byte(strings.Replace(sample, "x = { }\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ProfileNames(); !reflect.DeepEqual(got, []string{"big", "inline", "tcg.dots"}) {
		t.Errorf("profiles %q", got)
	}
	for _, tc := range []struct {
		table Table
		key   string
		vals  []string
		line  int
	}{
		{f.Defaults, "memory", []string{"2G"}, 3},
		{f.Defaults, "karg", []string{"console=ttyS0"}, 4},
		{f.Profiles["big"], "memory", []string{"8192"}, 8},
		{f.Profiles["big"], "vcpus", []string{"4"}, 9},
		{f.Profiles["big"], "publish", []string{"8080:80"}, 10},
		{f.Profiles["tcg.dots"], "ssh-transport", []string{"vsock"}, 18},
	} {
		s := tc.table.Settings[tc.key]
		if !reflect.DeepEqual(s.Values, tc.vals) || s.Line != tc.line {
			t.Errorf("%s: %q at line %d, want %q at %d", tc.key, s.Values, s.Line, tc.vals, tc.line)
		}
	}
}

// Every problem names the file, the line and the key, and says what to do.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"malformed", "[defaults]\nmemory = \"2G\nvcpus = 2\n", []string{"/c.toml:2: not valid TOML"}},
		{"duplicate", "[defaults]\nvcpus = 1\nvcpus = 2\n", []string{"/c.toml:3: not valid TOML", "vcpus"}},
		{"unknown key", "[defaults]\nmemory = \"2G\"\n\n[profiles.p]\nmemroy = \"4G\"\n", []string{`/c.toml:5: [profiles.p]: unknown key "memroy": the keys are memory, vcpus`}},
		{"unknown table", "[default]\nmemory = \"2G\"\n", []string{`/c.toml:1: unknown key "default": the file has only [defaults] and [profiles.NAME]`}},
		{"wrong type", "[profiles.p]\nvcpus = \"two\"\n", []string{`/c.toml:2: [profiles.p] vcpus: "two" is not a whole number: give e.g. vcpus = 2`}},
		{"bad memory", "[profiles.p]\n\nmemory = \"4Q\"\n", []string{`/c.toml:3: [profiles.p] memory: invalid size "4Q"`}},
		{"small memory", "[defaults]\nmemory = 100\n", []string{`/c.toml:2: [defaults] memory: memory "100" is out of range`}},
		{"bad vcpus", "[defaults]\nvcpus = 0\n", []string{"/c.toml:2: [defaults] vcpus: vcpus 0 is out of range"}},
		{"bad publish", "[profiles.web]\npublish = [\"80\"]\n", []string{"/c.toml:2: [profiles.web] publish: \"80\": a host and a guest port are needed"}},
		{"list not string", "[defaults]\nkarg = \"quiet\"\n", []string{`/c.toml:2: [defaults] karg: "quiet" is not a list: give a list of strings, e.g. karg = ["console=ttyS0"]`}},
		{"bad karg", "[defaults]\nkarg = [\"a b\"]\n", []string{"[defaults] karg: kernel argument \"a b\" contains white space"}},
		{"relative bind", "[defaults]\nbind = [\"data\"]\n", []string{`/c.toml:2: [defaults] bind: bind "data": give the host directory as an absolute path`}},
		{"root bind", "[defaults]\nbind = [\"/\"]\n", []string{"sharing the host's root directory read-write"}},
		{"bad accel", "[defaults]\naccel = \"hvf\"\n", []string{`/c.toml:2: [defaults] accel: "hvf": use auto, kvm or tcg`}},
		{"bad timeout", "[defaults]\ntimeout = 300\n", []string{`/c.toml:2: [defaults] timeout: 300 is a number; give a string, e.g. timeout = "5m"`}},
		{"negative timeout", "[defaults]\ntimeout = \"-5m\"\n", []string{`"-5m" is not a positive duration`}},
		{"bad transport", "[defaults]\nssh-transport = \"serial\"\n", []string{`"serial": use auto, vsock or tcp`}},
		{"profile not a table", "[profiles]\np = 3\n", []string{"/c.toml:2: profiles.p: a profile must be a table"}},
		{"inline table key", "[profiles]\np = { memory = \"lots\" }\n", []string{`/c.toml:2: [profiles.p] memory: invalid size "lots"`}},
		{"dotted key", "profiles.p.vcpus = 2\nprofiles.p.bogus = 1\n", []string{`/c.toml:2: [profiles.p]: unknown key "bogus"`}},
		{"all at once", "[defaults]\nvcpus = 0\n[profiles.p]\nnope = 1\n", []string{"/c.toml:2: [defaults] vcpus", "/c.toml:4: [profiles.p]: unknown key \"nope\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/c.toml", []byte(tc.file))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	f, err := Load(p)
	if err != nil || f.Exists || len(f.Profiles) != 0 {
		t.Fatalf("a missing file: %+v, %v", f, err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "cannot read the configuration file") {
		t.Fatalf("a directory: %v", err)
	}
}

func TestPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/bcvk/config.toml"},
		{map[string]string{"HOME": "/h"}, "/h/.config/bcvk/config.toml"},
		// A relative XDG_CONFIG_HOME is invalid by the spec: ignored.
		{map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"}, "/h/.config/bcvk/config.toml"},
	} {
		if got, err := Path(env(tc.env)); err != nil || got != tc.want {
			t.Errorf("%v: %q, %v", tc.env, got, err)
		}
	}
}

func TestKeyLines(t *testing.T) {
	ix := keyLines([]byte("a = 1\n[t.'u v'.\"w\"]\nx.y = \"\"\"\nz = 3\n\"\"\"\nz = 4\n  # c = 1\n[[arr]]\nb=2\n"))
	for _, tc := range []struct {
		path []string
		line int
	}{
		{[]string{"a"}, 1},
		{[]string{"t", "u v", "w"}, 2},
		{[]string{"t", "u v", "w", "x"}, 3},
		{[]string{"t", "u v", "w", "x", "y"}, 3},
		{[]string{"t", "u v", "w", "z"}, 6},
		{[]string{"t", "u v", "w", "q"}, 2},
		{[]string{"c"}, 0},
		{[]string{"arr", "b"}, 9},
	} {
		if got := ix.find(tc.path); got != tc.line {
			t.Errorf("%q: line %d, want %d", tc.path, got, tc.line)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("[profiles]\np = { memory = \"lots\" }\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Parse("/c.toml", []byte(s))
	})
}
