package config

import (
	"fmt"
	"strings"
)

// Where a value came from, highest precedence first.
const (
	FromFlag     = "flag"
	FromEnv      = "env"
	FromProfile  = "profile"
	FromDefaults = "defaults"
	FromBuiltin  = "built-in"
)

// Source says where a value came from: Name is the flag ("--memory"), the
// environment variable or the profile; File and Line are the file's.
type Source struct {
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

func (s Source) String() string {
	switch s.Kind {
	case FromFlag:
		return "flag " + s.Name
	case FromEnv:
		return "env " + s.Name
	case FromProfile:
		return fmt.Sprintf("profile %s (%s:%d)", s.Name, s.File, s.Line)
	case FromDefaults:
		return fmt.Sprintf("defaults (%s:%d)", s.File, s.Line)
	}
	return FromBuiltin
}

// Value is a key's effective value and its source.
type Value struct {
	Key    Key
	Values []string
	Source Source
}

// Inputs are what surrounds the file: the flags given, the environment and
// the built-in defaults.
type Inputs struct {
	// Profile is the profile to apply; "" for none.
	Profile string
	// Flag returns the values of a key's flag and its name ("--memory", or
	// "--itype" when that stands for it), ok false when it was not given.
	Flag func(key string) (values []string, name string, ok bool)
	// Getenv reads the environment; an empty variable counts as unset.
	Getenv func(string) string
	// Builtin is the value when nothing else sets one.
	Builtin func(key string) []string
}

// UnknownProfileError is a --profile that the file does not have.
type UnknownProfileError struct {
	Name, File string
	Exists     bool
	Profiles   []string
}

func (e *UnknownProfileError) Error() string {
	switch {
	case !e.Exists:
		return fmt.Sprintf("profile %q: there is no configuration file %s: write one with a [profiles.%s] table (see docs/config.md)", e.Name, e.File, e.Name)
	case len(e.Profiles) == 0:
		return fmt.Sprintf("profile %q: %s has no profiles: add a [profiles.%s] table", e.Name, e.File, e.Name)
	}
	return fmt.Sprintf("profile %q is not in %s: use one of %s", e.Name, e.File, strings.Join(e.Profiles, ", "))
}

// Profile returns the named profile's table.
func (f *File) Profile(name string) (Table, error) {
	t, ok := f.Profiles[name]
	if !ok {
		return Table{}, &UnknownProfileError{Name: name, File: f.Path, Exists: f.Exists, Profiles: f.ProfileNames()}
	}
	return t, nil
}

// Resolve finds each key's value: a flag given wins, then the environment,
// then the profile, then [defaults], then the built-in default. A list is
// taken whole from the first place that sets it: lists never merge, so a
// --bind replaces the profile's binds rather than adding to them.
func Resolve(f *File, in Inputs, keys []Key) ([]Value, error) {
	var prof Table
	if in.Profile != "" {
		var err error
		if prof, err = f.Profile(in.Profile); err != nil {
			return nil, err
		}
	}
	var out []Value
	for _, k := range keys {
		v := Value{Key: k}
		if vals, name, ok := in.Flag(k.Name); ok {
			v.Values, v.Source = vals, Source{Kind: FromFlag, Name: name}
		} else if e := k.Env; e != "" && in.Getenv(e) != "" {
			v.Values, v.Source = []string{in.Getenv(e)}, Source{Kind: FromEnv, Name: e}
		} else if s, ok := prof.Settings[k.Name]; ok {
			v.Values, v.Source = s.Values, Source{Kind: FromProfile, Name: in.Profile, File: f.Path, Line: s.Line}
		} else if s, ok := f.Defaults.Settings[k.Name]; ok {
			v.Values, v.Source = s.Values, Source{Kind: FromDefaults, File: f.Path, Line: s.Line}
		} else {
			v.Values, v.Source = in.Builtin(k.Name), Source{Kind: FromBuiltin}
		}
		out = append(out, v)
	}
	return out, nil
}

// Select returns the keys named, in Keys' order.
func Select(names ...string) []Key {
	var ks []Key
	for _, k := range Keys() {
		for _, n := range names {
			if k.Name == n {
				ks = append(ks, k)
			}
		}
	}
	return ks
}
