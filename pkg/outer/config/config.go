// Package config reads bcvk's configuration file: settings in [defaults]
// and in named profiles ([profiles.NAME]), each key named like the flag it
// stands for. It only reads and resolves; applying values to flags is the
// command tree's job.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/bcvk/bcvk/pkg/spec"
)

// ProfileEnv names the profile when --profile is not given.
const ProfileEnv = "BCVK_PROFILE"

// Path is the configuration file: $XDG_CONFIG_HOME/bcvk/config.toml, else
// ~/.config/bcvk/config.toml.
func Path(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "bcvk", "config.toml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find the configuration file: set XDG_CONFIG_HOME or HOME: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".config", "bcvk", "config.toml"), nil
}

// Setting is one key's value in a table of the file. Every value is kept as
// the strings its flag would take: one for a scalar, any number for a list.
type Setting struct {
	Key    string
	Values []string
	Line   int
}

// Table is [defaults] or one [profiles.NAME].
type Table struct {
	Line     int
	Settings map[string]Setting
}

// File is a parsed configuration file.
type File struct {
	Path     string
	Exists   bool
	Defaults Table
	Profiles map[string]Table
}

// ProfileNames lists the profiles, sorted.
func (f *File) ProfileNames() []string {
	return slices.Sorted(maps.Keys(f.Profiles))
}

// Error is a problem in the file, at a line (0 when it has none) and a key.
type Error struct {
	File string
	Line int
	// Where is the table and key, e.g. "[profiles.dev] memory".
	Where string
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Where == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Where + ": " + e.Msg
}

// Load reads the file at path. A missing file is an empty configuration; an
// unreadable one is an error.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{Path: path, Profiles: map[string]Table{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the configuration file: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a configuration file's contents; every problem is reported
// at once, in the order of the file.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path, Exists: true, Profiles: map[string]Table{}}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: path, Line: pe.Position.Line, Msg: "not valid TOML: " + pe.Message}
		}
		return nil, &Error{File: path, Msg: "not valid TOML: " + err.Error()}
	}
	lines := keyLines(data)
	var errs []*Error
	bad := func(key []string, where, format string, args ...any) {
		errs = append(errs, &Error{File: path, Line: lines.find(key), Where: where, Msg: fmt.Sprintf(format, args...)})
	}
	for name, v := range raw {
		switch name {
		case "defaults":
			t, ok := v.(map[string]any)
			if !ok {
				bad([]string{name}, "defaults", "must be a table: write [defaults] above its keys")
				continue
			}
			f.Defaults = readTable(t, []string{"defaults"}, "[defaults]", lines, bad)
		case "profiles":
			ps, ok := v.(map[string]any)
			if !ok {
				bad([]string{name}, "profiles", "must be tables: write [profiles.NAME] above each profile's keys")
				continue
			}
			for pn, pv := range ps {
				where := "[profiles." + pn + "]"
				t, ok := pv.(map[string]any)
				if !ok {
					bad([]string{name, pn}, "profiles."+pn, "a profile must be a table: write [profiles.%s] above its keys", pn)
					continue
				}
				if pn == "" || strings.ContainsAny(pn, " \t\n") {
					bad([]string{name, pn}, where, "a profile name cannot be empty or contain white space")
					continue
				}
				f.Profiles[pn] = readTable(t, []string{name, pn}, where, lines, bad)
			}
		default:
			bad([]string{name}, "", "unknown key %q: the file has only [defaults] and [profiles.NAME] tables", name)
		}
	}
	if len(errs) == 0 {
		return f, nil
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return nil, errors.Join(all...)
}

func readTable(t map[string]any, path []string, where string, lines lineIndex, bad func([]string, string, string, ...any)) Table {
	tab := Table{Line: lines.find(path), Settings: map[string]Setting{}}
	for k, v := range t {
		kp := append(append([]string{}, path...), k)
		def, ok := lookupKey(k)
		if !ok {
			bad(kp, where, "unknown key %q: the keys are %s", k, strings.Join(KeyNames(), ", "))
			continue
		}
		vals, err := def.read(v)
		if err != nil {
			bad(kp, where+" "+k, "%v", err)
			continue
		}
		tab.Settings[k] = Setting{Key: k, Values: vals, Line: lines.find(kp)}
	}
	return tab
}

// kind is a key's TOML type.
type kind int

const (
	kindString kind = iota
	kindInt
	kindList
)

// Key describes one setting: its TOML key, which is the flag's name, and
// the environment variable that stands for it, if any.
type Key struct {
	Name string
	Env  string
	kind kind
	// memory alone also takes a plain integer (MiB), as --memory does.
	intToo bool
	// check validates one value as the flag's own parser does.
	check   func(string) error
	example string
}

// Keys are the settings a file may hold, in the order `config show` lists
// them.
func Keys() []Key {
	return []Key{
		{Name: "memory", kind: kindString, intToo: true, check: checkMemory, example: `memory = "4G"`},
		{Name: "vcpus", kind: kindInt, check: checkVCPUs, example: `vcpus = 2`},
		{Name: "karg", kind: kindList, check: spec.ValidateKernelArg, example: `karg = ["console=ttyS0"]`},
		{Name: "bind", kind: kindList, check: checkBind(false), example: `bind = ["/srv/data:/mnt/data"]`},
		{Name: "ro-bind", kind: kindList, check: checkBind(true), example: `ro-bind = ["/srv/ref"]`},
		{Name: "publish", kind: kindList, check: checkPublish, example: `publish = ["8080:80"]`},
		{Name: "accel", kind: kindString, check: oneOf(spec.AccelAuto, spec.AccelKVM, spec.AccelTCG), example: `accel = "tcg"`},
		{Name: "timeout", kind: kindString, check: checkTimeout, example: `timeout = "5m"`},
		{Name: "runner-image", Env: "BCVK_RUNNER_IMAGE", kind: kindString, check: checkImage, example: `runner-image = "localhost/bcvk-runner:latest"`},
		{Name: "ssh-transport", kind: kindString, check: oneOf(spec.TransportAuto, spec.TransportVsock, spec.TransportTCP), example: `ssh-transport = "vsock"`},
	}
}

// KeyNames lists the keys.
func KeyNames() []string {
	var ns []string
	for _, k := range Keys() {
		ns = append(ns, k.Name)
	}
	return ns
}

// IsList says whether the key holds a list (a repeatable flag).
func (k Key) IsList() bool { return k.kind == kindList }

func lookupKey(name string) (Key, bool) {
	for _, k := range Keys() {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// read converts a decoded TOML value to the flag's strings and checks each.
func (k Key) read(v any) ([]string, error) {
	var vals []string
	switch k.kind {
	case kindString:
		switch x := v.(type) {
		case string:
			vals = []string{x}
		case int64:
			if !k.intToo {
				return nil, fmt.Errorf("%s is a number; give a string, e.g. %s", tomlValue(v), k.example)
			}
			vals = []string{strconv.FormatInt(x, 10)}
		default:
			return nil, fmt.Errorf("%s is not a string: give e.g. %s", tomlValue(v), k.example)
		}
	case kindInt:
		x, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("%s is not a whole number: give e.g. %s", tomlValue(v), k.example)
		}
		vals = []string{strconv.FormatInt(x, 10)}
	case kindList:
		xs, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s is not a list: give a list of strings, e.g. %s", tomlValue(v), k.example)
		}
		for _, x := range xs {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s in the list is not a string: give e.g. %s", tomlValue(x), k.example)
			}
			vals = append(vals, s)
		}
	}
	for _, s := range vals {
		if err := k.check(s); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

// tomlValue shows a decoded value as the file would have it.
func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date"
	}
	return fmt.Sprint(v)
}

func checkMemory(s string) error {
	_, err := spec.ParseMemoryMiB(s)
	return err
}

func checkVCPUs(s string) error {
	n, _ := strconv.Atoi(s)
	if n < 1 || n > spec.MaxVCPUs {
		return fmt.Errorf("vcpus %s is out of range: give between 1 and %d", s, spec.MaxVCPUs)
	}
	return nil
}

// checkBind reads a share as --bind does, but wants an absolute host path:
// a relative one would depend on where bcvk runs.
func checkBind(ro bool) func(string) error {
	return func(s string) error {
		host, _, _ := strings.Cut(s, ":")
		if !filepath.IsAbs(host) {
			return fmt.Errorf("bind %q: give the host directory as an absolute path", s)
		}
		_, err := spec.ParseBind(s, "/", ro)
		return err
	}
}

func checkPublish(s string) error {
	_, err := spec.ParsePublish(s)
	return err
}

func checkTimeout(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration: give e.g. \"5m\" or \"90s\"", s)
	}
	return nil
}

func checkImage(s string) error {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' }) {
		return fmt.Errorf("%q is not an image reference: give e.g. \"quay.io/example/bcvk-runner:1\"", s)
	}
	return nil
}

func oneOf(choices ...string) func(string) error {
	return func(s string) error {
		for _, c := range choices {
			if s == c {
				return nil
			}
		}
		n := len(choices)
		return fmt.Errorf("%q: use %s or %s", s, strings.Join(choices[:n-1], ", "), choices[n-1])
	}
}
