package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/bcvk/bcvk/pkg/outer/config"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configAnnotation marks a command (or a parent of commands) that takes
// settings from the configuration file; its value lists the keys, as only
// the flags that mean the same thing may take them (libvirt's --timeout,
// say, is another timeout).
const configAnnotation = "bcvk.config"

// vmConfigKeys are the keys of the ephemeral VM commands: all of them.
func vmConfigKeys() []string { return config.KeyNames() }

// withConfig marks c as taking keys from the configuration file.
func withConfig(c *cobra.Command, keys ...string) *cobra.Command {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[configAnnotation] = strings.Join(keys, ",")
	return c
}

// configKeys are the keys cmd takes, from its own mark or its parents'.
func configKeys(cmd *cobra.Command) []string {
	for c := cmd; c != nil; c = c.Parent() {
		if v, ok := c.Annotations[configAnnotation]; ok {
			return strings.Split(v, ",")
		}
	}
	return nil
}

// lookupFlag finds a flag of cmd, also a global one when cmd parses its
// own arguments (ephemeral ssh).
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if fl := cmd.Flags().Lookup(name); fl != nil {
		return fl
	}
	return cmd.Root().PersistentFlags().Lookup(name)
}

// profileAsked is the profile asked for, and by what: --profile, else
// BCVK_PROFILE.
func (g *globals) profileAsked(cmd *cobra.Command) (string, config.Source) {
	if fl := lookupFlag(cmd, "profile"); fl != nil && fl.Changed {
		return g.profile, config.Source{Kind: config.FromFlag, Name: "--profile"}
	}
	if p := g.getenv(config.ProfileEnv); p != "" {
		return p, config.Source{Kind: config.FromEnv, Name: config.ProfileEnv}
	}
	return "", config.Source{}
}

// loadConfig reads the configuration file: a problem in it is a usage
// error (exit 2), one reading it is not.
func (g *globals) loadConfig() (*config.File, error) {
	path, err := config.Path(g.getenv)
	if err != nil {
		return nil, err
	}
	f, err := config.Load(path)
	var ce *config.Error
	if errors.As(err, &ce) {
		return nil, usageError{fmt.Errorf("the configuration file has problems: fix them, or move the file away\n%w", err)}
	}
	return f, err
}

// resolveConfig finds the effective value of each key for cmd.
func (g *globals) resolveConfig(cmd *cobra.Command, f *config.File, keys []config.Key) ([]config.Value, error) {
	profile, _ := g.profileAsked(cmd)
	vals, err := config.Resolve(f, config.Inputs{
		Profile: profile,
		Flag: func(k string) ([]string, string, bool) {
			// A given --itype is a flag for memory and vCPUs.
			if it := cmd.Flags().Lookup("itype"); it != nil && it.Changed && (k == "memory" || k == "vcpus") {
				return []string{it.Value.String()}, "--itype", true
			}
			fl := lookupFlag(cmd, k)
			if fl == nil || !fl.Changed {
				return nil, "", false
			}
			return flagValues(fl), "--" + k, true
		},
		Getenv: g.getenv,
		Builtin: func(k string) []string {
			fl := lookupFlag(cmd, k)
			if fl == nil {
				return nil
			}
			if _, ok := fl.Value.(pflag.SliceValue); ok {
				return []string{}
			}
			if k == "runner-image" {
				// The flag's default holds the environment's (root.go).
				return []string{version.RunnerImage()}
			}
			return []string{fl.DefValue}
		},
	}, keys)
	var pe *config.UnknownProfileError
	if errors.As(err, &pe) {
		return nil, usageError{err}
	}
	return vals, err
}

func flagValues(fl *pflag.Flag) []string {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return []string{fl.Value.String()}
}

// applyConfig gives the flags of cmd that were not given their values from
// the environment, the profile and [defaults]; the commands then check them
// as they check flags.
func (g *globals) applyConfig(cmd *cobra.Command) error {
	names := configKeys(cmd)
	if names == nil {
		return nil
	}
	f, err := g.loadConfig()
	if err != nil {
		return err
	}
	vals, err := g.resolveConfig(cmd, f, config.Select(names...))
	if err != nil {
		return err
	}
	for _, v := range vals {
		if v.Source.Kind == config.FromFlag || v.Source.Kind == config.FromBuiltin {
			continue
		}
		fl := lookupFlag(cmd, v.Key.Name)
		if fl == nil {
			continue
		}
		// Value.Set leaves the flag unchanged (not "given"), unlike
		// FlagSet.Set: --itype still wins over a profile's memory.
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			err = sv.Replace(v.Values)
		} else {
			err = fl.Value.Set(v.Values[0])
		}
		if err != nil {
			return usageError{fmt.Errorf("%s from %s: %w", v.Key.Name, v.Source, err)}
		}
	}
	return nil
}

func newConfigCommand(g *globals, st Streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration file and the settings it gives",
		Long: `bcvk reads $XDG_CONFIG_HOME/bcvk/config.toml (~/.config/bcvk/config.toml) for
default settings ([defaults]) and named sets of them ([profiles.NAME]) that
--profile NAME or BCVK_PROFILE applies. A flag given wins over the
environment, which wins over the profile, then [defaults], then the built-in
value. See docs/config.md.`,
	}
	c.AddCommand(newConfigShowCommand(g, st), newConfigPathCommand(g, st))
	return c
}

func newConfigPathCommand(g *globals, st Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "path",
		Short: "Print where the configuration file is (whether or not it exists)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := config.Path(g.getenv)
			if err != nil {
				return err
			}
			fmt.Fprintln(st.Out, p)
			return nil
		},
	}
}

// shownConfig is `config show --json`.
type shownConfig struct {
	File          string         `json:"file"`
	FileExists    bool           `json:"fileExists"`
	Profile       string         `json:"profile"`
	ProfileSource *config.Source `json:"profileSource"`
	Profiles      []string       `json:"profiles"`
	Settings      []shownSetting `json:"settings"`
}

type shownSetting struct {
	Key string `json:"key"`
	// Value is a list of strings for a list, a number for vcpus, else a
	// string.
	Value  any           `json:"value"`
	Source config.Source `json:"source"`
}

func newConfigShowCommand(g *globals, st Streams) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show",
		Short: "Print the effective settings and where each comes from",
		Long: `Print each setting a VM would get from the configuration file, the profile,
the environment and the flags given here (the flags of ephemeral run-ssh),
and where it comes from: a flag, the environment, a profile or [defaults]
(with the file's line), or bcvk's built-in value. Nothing is started.`,
		Example: `  bcvk config show
  bcvk --profile big config show --vcpus 8 --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return err
			}
			vals, err := g.resolveConfig(cmd, f, config.Keys())
			if err != nil {
				return err
			}
			s := shownConfig{File: f.Path, FileExists: f.Exists, Profiles: f.ProfileNames(), Settings: []shownSetting{}}
			if p, src := g.profileAsked(cmd); p != "" {
				s.Profile, s.ProfileSource = p, &src
			}
			for _, v := range vals {
				s.Settings = append(s.Settings, shownSetting{Key: v.Key.Name, Value: shownValue(v), Source: v.Source})
			}
			if asJSON {
				return writeJSON(st.Out, s)
			}
			return writeShownConfig(st.Out, s, vals)
		},
	}
	// The settings' flags as run-ssh has them: show says what they would do.
	var vf vmFlags
	all := pflag.NewFlagSet("run-ssh", pflag.ContinueOnError)
	vf.register(all)
	for _, k := range config.Keys() {
		if fl := all.Lookup(k.Name); fl != nil {
			c.Flags().AddFlag(fl)
		}
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func shownValue(v config.Value) any {
	switch {
	case v.Key.IsList():
		return append([]string{}, v.Values...)
	case v.Key.Name == "vcpus" && len(v.Values) == 1:
		if n, err := strconv.Atoi(v.Values[0]); err == nil {
			return n
		}
	}
	if len(v.Values) == 0 {
		return ""
	}
	return v.Values[0]
}

func writeShownConfig(w io.Writer, s shownConfig, vals []config.Value) error {
	file := s.File
	if !s.FileExists {
		file += " (none there)"
	}
	fmt.Fprintf(w, "Configuration file: %s\n", file)
	if s.Profile != "" {
		fmt.Fprintf(w, "Profile: %s (%s)\n", s.Profile, s.ProfileSource)
	}
	if len(s.Profiles) > 0 {
		fmt.Fprintf(w, "Profiles: %s\n", strings.Join(s.Profiles, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tFROM")
	for _, v := range vals {
		val := strings.Join(v.Values, " ")
		if v.Key.IsList() && len(v.Values) == 0 {
			val = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Key.Name, val, v.Source)
	}
	return tw.Flush()
}
