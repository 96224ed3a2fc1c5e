package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// configEnv writes file as the configuration file of a fresh environment.
func configEnv(t *testing.T, file string, env map[string]string) func(string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bcvk"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bcvk", "config.toml"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return dir
		}
		return env[k]
	}
}

func runWithEnv(getenv func(string) string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	st := Streams{In: strings.NewReader(""), Out: &out, Err: &errb}
	root := newRootCommand(st, getenv)
	root.SetArgs(args)
	_, err := root.ExecuteC()
	code := 0
	if err != nil {
		code = 1
		if _, ok := err.(usageError); ok {
			code = 2
		}
		errb.WriteString("Error: " + err.Error())
	}
	return code, out.String(), errb.String()
}

const testConfig = `[defaults]
memory = "1536M"
karg = ["quiet"]
runner-image = "localhost/runner:defaults"

[profiles.p]
vcpus = 3
karg = ["console=ttyS0", "debug"]
publish = ["18080:80"]
timeout = "7m"

[profiles.other]
accel = "tcg"
`

// The flags of a command that were not given take the profile's and the
// defaults' values; flags given and --itype keep theirs.
func TestApplyConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want map[string]string
	}{
		{"defaults only", nil, []string{"ephemeral", "run-ssh", "img"},
			map[string]string{"memory": "1536M", "vcpus": "2", "karg": "[quiet]", "publish": "[]", "timeout": "5m0s", "runner-image": "localhost/runner:defaults"}},
		{"profile", nil, []string{"--profile", "p", "ephemeral", "run-ssh", "img"},
			map[string]string{"memory": "1536M", "vcpus": "3", "karg": "[console=ttyS0,debug]", "publish": "[18080:80]", "timeout": "7m0s"}},
		{"profile from env", map[string]string{"BCVK_PROFILE": "p"}, []string{"ephemeral", "run", "img"},
			map[string]string{"vcpus": "3", "timeout": "7m0s"}},
		{"flag over env", map[string]string{"BCVK_PROFILE": "p"}, []string{"--profile", "other", "run-ephemeral", "img"},
			map[string]string{"vcpus": "2", "accel": "tcg"}},
		{"flags replace lists", nil, []string{"--profile", "p", "ephemeral", "run-ssh", "--karg", "x=1", "--vcpus", "1", "img"},
			map[string]string{"vcpus": "1", "karg": "[x=1]", "publish": "[18080:80]"}},
		{"itype beats the profile's size", nil, []string{"--profile", "p", "ephemeral", "run-ssh", "--itype", "u1.small", "img"},
			map[string]string{"memory": "2G", "vcpus": "2"}},
		{"env over file", map[string]string{"BCVK_RUNNER_IMAGE": "localhost/runner:env"}, []string{"ephemeral", "run-ssh", "img"},
			map[string]string{"runner-image": "localhost/runner:env"}},
		{"runner flag over env", map[string]string{"BCVK_RUNNER_IMAGE": "localhost/runner:env"}, []string{"--runner-image", "localhost/runner:flag", "ephemeral", "run-ssh", "img"},
			map[string]string{"runner-image": "localhost/runner:flag"}},
		{"libvirt takes the size", nil, []string{"--profile", "p", "libvirt", "run", "img"},
			map[string]string{"memory": "1536M", "vcpus": "3", "karg": "[]", "timeout": "10m0s"}},
		{"to-disk takes the runner image only", nil, []string{"--profile", "p", "to-disk", "img", "d.img"},
			map[string]string{"memory": "2G", "karg": "[]", "runner-image": "localhost/runner:defaults"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := configEnv(t, testConfig, tc.env)
			root := newRootCommand(Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, getenv)
			cmd, args := find(t, root, tc.args)
			if err := cmd.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			if err := root.PersistentPreRunE(cmd, nil); err != nil {
				t.Fatal(err)
			}
			for k, w := range tc.want {
				fl := lookupFlag(cmd, k)
				if fl == nil {
					t.Fatalf("no flag --%s", k)
				}
				if got := fl.Value.String(); got != w {
					t.Errorf("--%s = %q, want %q", k, got, w)
				}
			}
		})
	}
}

func find(t *testing.T, root *cobra.Command, args []string) (*cobra.Command, []string) {
	t.Helper()
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, rest
}

func TestConfigShow(t *testing.T) {
	getenv := configEnv(t, testConfig, map[string]string{"BCVK_PROFILE": "p", "BCVK_RUNNER_IMAGE": "localhost/runner:env"})
	code, out, errs := runWithEnv(getenv, "config", "show", "--json", "--vcpus", "4", "-p", "1234:22")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var s shownConfig
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Profile != "p" || s.ProfileSource == nil || s.ProfileSource.Kind != "env" || !s.FileExists ||
		!reflect.DeepEqual(s.Profiles, []string{"other", "p"}) {
		t.Errorf("got %+v", s)
	}
	got := map[string]string{}
	for _, v := range s.Settings {
		b, _ := json.Marshal(v.Value)
		got[v.Key] = string(b) + " " + v.Source.Kind + " " + v.Source.Name
	}
	for k, w := range map[string]string{
		"memory":        `"1536M" defaults `,
		"vcpus":         `4 flag --vcpus`,
		"karg":          `["console=ttyS0","debug"] profile p`,
		"publish":       `["1234:22"] flag --publish`,
		"ro-bind":       `[] built-in `,
		"runner-image":  `"localhost/runner:env" env BCVK_RUNNER_IMAGE`,
		"ssh-transport": `"auto" built-in `,
	} {
		if got[k] != w {
			t.Errorf("%s: %s, want %s", k, got[k], w)
		}
	}

	code, out, _ = runWithEnv(getenv, "--profile", "other", "config", "show")
	for _, w := range []string{"Profile: other (flag --profile)", "Profiles: other, p", "accel          tcg", "profile other ("} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("exit %d, stdout lacks %q:\n%s", code, w, out)
		}
	}
}

// A bad file, or a profile it lacks, stops a command before anything
// starts, with the file, line and key.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		args       []string
		want       string
	}{
		{"malformed", "[defaults]\nmemory = 4G\n", []string{"ephemeral", "run-ssh", "img"}, "config.toml:2: not valid TOML"},
		{"unknown key", "[defaults]\n\n[profiles.p]\ncpus = 2\n", []string{"ephemeral", "run", "img"}, `config.toml:4: [profiles.p]: unknown key "cpus"`},
		{"bad value", "[profiles.p]\npublish = [\"8080\"]\n", []string{"config", "show"}, `config.toml:2: [profiles.p] publish: "8080": a host and a guest port are needed`},
		{"wrong type", "[defaults]\nvcpus = \"two\"\n", []string{"libvirt", "run", "img"}, `config.toml:2: [defaults] vcpus: "two" is not a whole number`},
		{"unknown profile", "[profiles.a]\n[profiles.b]\n", []string{"--profile", "c", "ephemeral", "run-ssh", "img"}, `profile "c" is not in `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runWithEnv(configEnv(t, tc.file, nil), tc.args...)
			if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errs, tc.want)
			}
		})
	}
	// Commands that take nothing from the file do not read it.
	code, _, errs := runWithEnv(configEnv(t, "[defaults\n", nil), "config", "path")
	if code != 0 {
		t.Errorf("config path: exit %d: %s", code, errs)
	}
}
