package config

import (
	"reflect"
	"strings"
	"testing"
)

const precedenceFile = `[defaults]
memory = "2G"
vcpus = 1
karg = ["quiet"]
runner-image = "localhost/runner:defaults"

[profiles.p]
memory = "3G"
karg = ["console=ttyS0", "debug"]
runner-image = "localhost/runner:profile"
`

// Flags win over the environment, which wins over the profile, then
// [defaults], then the built-in value; lists are taken whole.
func TestResolvePrecedence(t *testing.T) {
	f, err := Parse("/c.toml", []byte(precedenceFile))
	if err != nil {
		t.Fatal(err)
	}
	builtin := func(k string) []string {
		if k == "karg" {
			return nil
		}
		return []string{"builtin-" + k}
	}
	type want struct {
		vals   []string
		source string
	}
	for _, tc := range []struct {
		name    string
		profile string
		flags   map[string][]string
		env     map[string]string
		want    map[string]want
	}{
		{"nothing set", "", nil, nil, map[string]want{
			"memory":       {[]string{"2G"}, "defaults (/c.toml:2)"},
			"vcpus":        {[]string{"1"}, "defaults (/c.toml:3)"},
			"karg":         {[]string{"quiet"}, "defaults (/c.toml:4)"},
			"accel":        {[]string{"builtin-accel"}, "built-in"},
			"runner-image": {[]string{"localhost/runner:defaults"}, "defaults (/c.toml:5)"},
		}},
		{"profile", "p", nil, nil, map[string]want{
			"memory":       {[]string{"3G"}, "profile p (/c.toml:8)"},
			"vcpus":        {[]string{"1"}, "defaults (/c.toml:3)"},
			"karg":         {[]string{"console=ttyS0", "debug"}, "profile p (/c.toml:9)"},
			"runner-image": {[]string{"localhost/runner:profile"}, "profile p (/c.toml:10)"},
		}},
		{"env over profile", "p", nil, map[string]string{"BCVK_RUNNER_IMAGE": "localhost/runner:env"}, map[string]want{
			"runner-image": {[]string{"localhost/runner:env"}, "env BCVK_RUNNER_IMAGE"},
		}},
		{"empty env is unset", "p", nil, map[string]string{"BCVK_RUNNER_IMAGE": ""}, map[string]want{
			"runner-image": {[]string{"localhost/runner:profile"}, "profile p (/c.toml:10)"},
		}},
		{"flags over all", "p", map[string][]string{"memory": {"5G"}, "karg": {"x=1"}, "runner-image": {"localhost/runner:flag"}},
			map[string]string{"BCVK_RUNNER_IMAGE": "localhost/runner:env"}, map[string]want{
				"memory":       {[]string{"5G"}, "flag --memory"},
				"karg":         {[]string{"x=1"}, "flag --karg"},
				"runner-image": {[]string{"localhost/runner:flag"}, "flag --runner-image"},
				"vcpus":        {[]string{"1"}, "defaults (/c.toml:3)"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := Resolve(f, Inputs{
				Profile: tc.profile,
				Flag: func(k string) ([]string, string, bool) {
					v, ok := tc.flags[k]
					return v, "--" + k, ok
				},
				Getenv:  func(k string) string { return tc.env[k] },
				Builtin: builtin,
			}, Keys())
			if err != nil {
				t.Fatal(err)
			}
			if len(vals) != len(Keys()) {
				t.Fatalf("%d values for %d keys", len(vals), len(Keys()))
			}
			got := map[string]Value{}
			for _, v := range vals {
				got[v.Key.Name] = v
			}
			for k, w := range tc.want {
				if g := got[k]; !reflect.DeepEqual(g.Values, w.vals) || g.Source.String() != w.source {
					t.Errorf("%s: %q from %s, want %q from %s", k, g.Values, g.Source, w.vals, w.source)
				}
			}
		})
	}
}

func TestUnknownProfile(t *testing.T) {
	f, err := Parse("/c.toml", []byte(precedenceFile+"[profiles.a]\n"))
	if err != nil {
		t.Fatal(err)
	}
	none := Inputs{Profile: "nope", Flag: func(string) ([]string, string, bool) { return nil, "", false }}
	_, err = Resolve(f, none, Keys())
	if err == nil || err.Error() != `profile "nope" is not in /c.toml: use one of a, p` {
		t.Errorf("got %v", err)
	}
	empty, _ := Parse("/c.toml", []byte("[defaults]\n"))
	if _, err = Resolve(empty, none, Keys()); err == nil || !strings.Contains(err.Error(), "/c.toml has no profiles") {
		t.Errorf("got %v", err)
	}
	missing := &File{Path: "/c.toml"}
	if _, err = Resolve(missing, none, Keys()); err == nil || !strings.Contains(err.Error(), "there is no configuration file /c.toml") {
		t.Errorf("got %v", err)
	}
}

func TestSelect(t *testing.T) {
	var got []string
	for _, k := range Select("runner-image", "memory", "nope") {
		got = append(got, k.Name)
	}
	if !reflect.DeepEqual(got, []string{"memory", "runner-image"}) {
		t.Errorf("got %q", got)
	}
}
