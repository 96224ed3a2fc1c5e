// Package kargsd reads the kernel arguments a bootc image asks for in
// /usr/lib/bootc/kargs.d/*.toml, as bootc applies them when it installs:
// files in name order, each with `kargs = [...]` and an optional
// `match-architectures = [...]`.
package kargsd

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/bcvk/bcvk/pkg/inner/imagefs"
	"github.com/bcvk/bcvk/pkg/spec"
)

// Dir is where bootc images keep the files.
const Dir = "/usr/lib/bootc/kargs.d"

// Bounds on what is read from the image.
const (
	maxFiles    = 64
	maxFileSize = 64 << 10
)

// File is one file's arguments that apply here.
type File struct {
	Name string
	Args []string
}

type doc struct {
	Kargs              []string `toml:"kargs"`
	MatchArchitectures []string `toml:"match-architectures"`
}

// Arch is the architecture name bootc matches (Rust's, as uname -m
// says) for a Go GOARCH.
func Arch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "x86"
	case "ppc64le":
		return "powerpc64"
	}
	return goarch
}

// Read returns the files of root's kargs.d that apply to arch, in name
// order; a file whose match-architectures leaves arch out contributes
// nothing. An image without the directory has none. A file bootc would
// refuse is an error naming it.
func Read(root, arch string) ([]File, error) {
	entries, err := imagefs.ReadDir(root, Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".toml") && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	if len(names) > maxFiles {
		return nil, fmt.Errorf("%s holds %d files; bcvk reads at most %d", Dir, len(names), maxFiles)
	}
	sort.Strings(names)
	var out []File
	for _, n := range names {
		b, err := imagefs.ReadFile(root, Dir+"/"+n, maxFileSize)
		if err != nil {
			return nil, err
		}
		args, err := Parse(b, arch)
		if err != nil {
			return nil, fmt.Errorf("the image's %s/%s: %w", Dir, imagefs.Quote(n), err)
		}
		if len(args) > 0 {
			out = append(out, File{Name: n, Args: args})
		}
	}
	return out, nil
}

// Parse reads one file and returns its arguments if they apply to arch.
func Parse(b []byte, arch string) ([]string, error) {
	var d doc
	md, err := toml.Decode(string(b), &d)
	if err != nil {
		return nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, fmt.Errorf("unknown key %s (bootc knows kargs and match-architectures)", imagefs.Quote(u[0].String()))
	}
	if !md.IsDefined("kargs") {
		return nil, errors.New("no kargs list")
	}
	for _, a := range d.Kargs {
		if err := spec.ValidateKernelArg(a); err != nil {
			return nil, err
		}
	}
	if md.IsDefined("match-architectures") {
		match := false
		for _, a := range d.MatchArchitectures {
			match = match || a == arch
		}
		if !match {
			return nil, nil
		}
	}
	if len(d.Kargs) == 0 {
		return nil, nil
	}
	return d.Kargs, nil
}

// Args joins the files' arguments.
func Args(files []File) []string {
	var a []string
	for _, f := range files {
		a = append(a, f.Args...)
	}
	return a
}
