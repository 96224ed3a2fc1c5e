package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeConfig makes dir/bcvk/config.toml and points bcvk at it through
// XDG_CONFIG_HOME; it returns the file's path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "bcvk", "config.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CONFIG_HOME", dir)
	return p
}

// The configuration file (issue 17): `config show` says where each value
// comes from, with a flag and the environment over the profile.
func TestConfigShowSources(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bcvk binary")
	}
	p := writeConfig(t, `[defaults]
memory = "3G"
vcpus = 1

[profiles.p]
memory = "2G"
karg = ["bcvk.cfg=profile"]
runner-image = "localhost/bcvk-runner:from-profile"
`)
	t.Setenv("BCVK_RUNNER_IMAGE", "localhost/bcvk-runner:from-env")
	r := runBcvk(t, sharedState, nil, time.Minute, "--profile", "p", "config", "show", "--json", "--memory", "1G")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var s struct {
		File     string
		Profile  string
		Settings []struct {
			Key    string
			Value  any
			Source struct {
				Kind, Name, File string
				Line             int
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if s.File != p || s.Profile != "p" {
		t.Errorf("file %q, profile %q; want %q, p", s.File, s.Profile, p)
	}
	got := map[string]string{}
	for _, v := range s.Settings {
		got[v.Key] = fmt.Sprintf("%v %s %s %d", v.Value, v.Source.Kind, v.Source.Name, v.Source.Line)
	}
	for k, w := range map[string]string{
		"memory":        "1G flag --memory 0",
		"vcpus":         "1 defaults  3",
		"karg":          "[bcvk.cfg=profile] profile p 7",
		"runner-image":  "localhost/bcvk-runner:from-env env BCVK_RUNNER_IMAGE 0",
		"ssh-transport": "auto built-in  0",
	} {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}

// One boot with a profile: its vCPUs, kernel arguments, share and runner
// image reach the VM, over [defaults], and a flag wins over its memory.
func TestConfigProfileBoot(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-config"
	cleanupContainer(t, name)
	share := t.TempDir()
	if err := os.WriteFile(filepath.Join(share, "hello"), []byte("from the profile's bind\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The runner under test comes from the profile, not the environment.
	runner := runnerImage(t)
	writeConfig(t, `[defaults]
vcpus = 1
memory = "3G"
karg = ["bcvk.cfg=defaults"]
runner-image = "localhost/bcvk-runner:no-such-tag"

[profiles.p]
vcpus = 2
memory = "2G"
karg = ["bcvk.cfg=profile"]
bind = ["`+share+`:/mnt/cfgbind"]
runner-image = "`+runner+`"
`)
	t.Setenv("BCVK_RUNNER_IMAGE", "")
	script := `echo "nproc=$(nproc)"
echo "memkb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
echo "cmdline=$(cat /proc/cmdline)"
echo "bind=$(cat /mnt/cfgbind/hello)"`
	r := runBcvk(t, sharedState, nil, bootTimeout, "--profile", "p", "ephemeral", "run-ssh", "--name", name,
		"--memory", "1G", sampleImage(), "--", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	field := func(key string) string { return guestField(t, r.stdout, key) }
	if n := field("nproc"); n != "2" {
		t.Errorf("guest has %s CPUs, want the profile's 2", n)
	}
	// --memory 1G wins over the profile's 2G and the defaults' 3G.
	if kb, _ := strconv.Atoi(field("memkb")); kb > 1024*1024 || kb < 700*1024 {
		t.Errorf("guest MemTotal %d kB does not match --memory 1G", kb)
	}
	// The profile's list replaces the defaults' list.
	if c := " " + field("cmdline") + " "; !strings.Contains(c, " bcvk.cfg=profile ") || strings.Contains(c, "bcvk.cfg=defaults") {
		t.Errorf("/proc/cmdline %q: want the profile's karg and not the defaults'", c)
	}
	if b := field("bind"); b != "from the profile's bind" {
		t.Errorf("the profile's bind shows %q", b)
	}
	assertNothingLeft(t, name, sharedState)
}

// A bad file or a profile it lacks stops bcvk before anything starts, with
// the file, line and key.
func TestConfigBadFiles(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-config-bad"
	cleanupContainer(t, name)
	for _, tc := range []struct {
		name, file, profile string
		want                []string
	}{
		{"malformed", "[profiles.p]\nmemory = 2G\n", "p", []string{"config.toml:2: not valid TOML"}},
		{"unknown key", "[profiles.p]\nvcpus = 2\nmem = \"2G\"\n", "p", []string{`config.toml:3: [profiles.p]: unknown key "mem"`, "the keys are memory"}},
		{"wrong type", "[defaults]\nvcpus = \"two\"\n[profiles.p]\n", "p", []string{`config.toml:2: [defaults] vcpus: "two" is not a whole number`}},
		{"bad value", "[profiles.p]\n\npublish = [\"8080:80/udp\"]\n", "p", []string{`config.toml:3: [profiles.p] publish:`, "only tcp"}},
		{"unknown profile", "[profiles.a]\nvcpus = 1\n[profiles.b]\n", "p", []string{`profile "p" is not in `, "use one of a, b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeConfig(t, tc.file)
			r := runBcvk(t, sharedState, nil, time.Minute, "--profile", tc.profile, "ephemeral", "run-ssh", "--name", name,
				sampleImage(), "--", "true")
			if r.code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			assertNothingLeft(t, name, sharedState)
		})
	}
}
