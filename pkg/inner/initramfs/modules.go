package initramfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RootModules are the modules, by name, that a virtiofs root with an overlay
// on top needs; whichever of them the image's kernel has built in is skipped.
var RootModules = []string{"virtio_pci", "fuse", "virtiofs", "overlay"}

// modName turns "kernel/fs/overlayfs/overlay.ko.xz" into "overlay".
func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// Resolution says how each wanted module is provided.
type Resolution struct {
	Files   []string // module files relative to the modules dir, in load order
	Builtin []string
	Missing []string
}

// ResolveModules reads modules.dep and modules.builtin in dir and returns the
// files to load, dependencies first.
func ResolveModules(dir string, want []string) (Resolution, error) {
	deps, err := readDep(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return Resolution{}, err
	}
	builtin, err := readBuiltin(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return Resolution{}, err
	}
	byName := map[string]string{}
	for file := range deps {
		byName[modName(file)] = file
	}
	var res Resolution
	seen := map[string]bool{}
	var visit func(file string)
	visit = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		// modprobe loads the last listed dependency first.
		d := deps[file]
		for i := len(d) - 1; i >= 0; i-- {
			visit(d[i])
		}
		res.Files = append(res.Files, file)
	}
	for _, name := range want {
		name = strings.ReplaceAll(name, "-", "_")
		switch file, ok := byName[name]; {
		case builtin[name]:
			res.Builtin = append(res.Builtin, name)
		case ok:
			visit(file)
		default:
			res.Missing = append(res.Missing, name)
		}
	}
	return res, nil
}

func readDep(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]string{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		file, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		out[strings.TrimSpace(file)] = strings.Fields(rest)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}

func readBuiltin(path string) (map[string]bool, error) {
	out := map[string]bool{}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[modName(l)] = true
		}
	}
	return out, nil
}
