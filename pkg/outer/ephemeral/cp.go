package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/tarcopy"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
)

// Endpoint is one side of a copy: a path in the VM named VM, or on the host
// when VM is empty.
type Endpoint struct {
	VM, Path string
}

func (e Endpoint) String() string {
	if e.VM == "" {
		return e.Path
	}
	return e.VM + ":" + e.Path
}

// ParseEndpoint reads NAME:PATH as a path in a VM, as podman cp does. The
// part before the first ':' must be a valid VM name without a '/', so a
// host path with a ':' can be written ./a:b.
func ParseEndpoint(s string) Endpoint {
	name, p, ok := strings.Cut(s, ":")
	if ok && spec.ValidateName(name) == nil {
		return Endpoint{VM: name, Path: p}
	}
	return Endpoint{Path: s}
}

// CopyOptions are one `ephemeral cp`.
type CopyOptions struct {
	Src, Dest Endpoint
	Recursive bool
}

// VM is the name of the VM the copy goes to or comes from.
func (o CopyOptions) VM() string { return o.Src.VM + o.Dest.VM }

// ParseCopy reads cp's SRC and DEST; its errors are usage errors.
func ParseCopy(src, dest string, recursive bool) (CopyOptions, error) {
	o := CopyOptions{Src: ParseEndpoint(src), Dest: ParseEndpoint(dest), Recursive: recursive}
	switch {
	case o.Src.VM != "" && o.Dest.VM != "":
		return o, errors.New("both SRC and DEST are in a VM: one side must be a host path")
	case o.Src.VM == "" && o.Dest.VM == "":
		msg := "neither SRC nor DEST names a VM: write the VM's side as NAME:PATH"
		for _, a := range []string{src, dest} {
			if strings.Contains(a, ":") {
				msg += fmt.Sprintf(" (%q is a host path: what comes before its ':' is no VM name)", a)
				break
			}
		}
		return o, errors.New(msg)
	}
	for _, e := range []Endpoint{o.Src, o.Dest} {
		if e.Path == "" {
			if e.VM != "" {
				return o, fmt.Errorf("%q: give a PATH in the VM after %s:", e.String(), e.VM)
			}
			return o, errors.New("empty host path")
		}
		if strings.ContainsRune(e.Path, 0) {
			return o, fmt.Errorf("%q: a path cannot hold a NUL byte", e.String())
		}
	}
	return o, nil
}

// Guest runs a command in the VM with the given streams, as
// vm.Runtime.ExecSSH does for one VM and user.
type Guest func(ctx context.Context, cmd []string, st vm.Streams) error

// Copy copies a file or tree between the host and the guest, like cp: into
// DEST when DEST is a directory, else as DEST. Guest paths are relative to
// the login user's home. A first SSH call looks at the guest's side, a
// second one streams a tar archive through the guest's tar. Nothing half
// copied is left at DEST: the copy is made beside it and renamed into
// place.
func Copy(ctx context.Context, guest Guest, o CopyOptions, st vm.Streams) error {
	if o.Src.VM != "" {
		return copyOut(ctx, guest, o, st)
	}
	return copyIn(ctx, guest, o, st)
}

// kind is what a path is, as `test` says: l (a symbolic link), e (exists,
// following links), d (a directory), f (a regular file).
type kind string

func (k kind) has(c string) bool { return strings.Contains(string(k), c) }
func (k kind) missing() bool     { return !k.has("e") && !k.has("l") }

// hostKind looks at a host path the way probeScript does in the guest.
func hostKind(p string) kind {
	k := ""
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		k += "l"
	}
	if fi, err := os.Stat(p); err == nil {
		k += "e"
		switch {
		case fi.IsDir():
			k += "d"
		case fi.Mode().IsRegular():
			k += "f"
		}
	}
	return kind(k)
}

// probeScript prints, for each path after the first argument, one line "x"
// and the letters of its kind; then the first argument resolved (links
// followed) when it names something. Paths are arguments, never part of a
// script.
const probeScript = `r=$1; shift
for p do
  s=x
  if [ -L "$p" ]; then s=${s}l; fi
  if [ -e "$p" ]; then s=${s}e; fi
  if [ -d "$p" ]; then s=${s}d; fi
  if [ -f "$p" ]; then s=${s}f; fi
  echo "$s"
done
if [ -n "$r" ] && [ -e "$r" ]; then readlink -f -- "$r"; fi`

// probeCommand looks at paths in the guest, and resolves resolve (if not
// empty).
func probeCommand(resolve string, paths ...string) []string {
	return append([]string{"sh", "-c", probeScript, "sh", resolve}, paths...)
}

// probe runs probeCommand and returns the kinds and the resolved path.
func probe(ctx context.Context, guest Guest, st vm.Streams, resolve string, paths ...string) ([]kind, string, error) {
	var out strings.Builder
	if err := guest(ctx, probeCommand(resolve, paths...), vm.Streams{Out: &out, Err: st.Err}); err != nil {
		return nil, "", guestError("looking at the VM's side", err)
	}
	s := out.String()
	var kinds []kind
	for range paths {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok || !strings.HasPrefix(line, "x") {
			return nil, "", fmt.Errorf("unexpected answer from the guest's shell: %q", out.String())
		}
		kinds = append(kinds, kind(line[1:]))
		s = rest
	}
	return kinds, strings.TrimSuffix(s, "\n"), nil
}

// extractScript unpacks a stream from copyIn in a new directory beside the
// target and renames it into place only when the stream was whole (its
// last entry, "ok", arrived): the target is never half written.
// Arguments: the target's directory, its name, and "dir" or "file" (what is
// copied).
const extractScript = `set -e
d=$1 n=$2 k=$3
tmp=$(mktemp -d "$d/.bcvk-cp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
tar -x -p -o -f - -C "$tmp"
if [ ! -f "$tmp/ok" ]; then echo "bcvk: the copy stream ended early" >&2; exit 1; fi
if [ -L "$d/$n" ] || { [ "$k" = dir ] && [ -e "$d/$n" ]; } || [ -d "$d/$n" ]; then
  echo "bcvk: $d/$n appeared during the copy" >&2; exit 1
fi
mv -f "$tmp/t/$n" "$d/$n"`

func extractCommand(dir, name string, isDir bool) []string {
	k := "file"
	if isDir {
		k = "dir"
	}
	return []string{"sh", "-c", extractScript, "sh", guestDir(dir), name, k}
}

// archiveCommand writes base, in dir, as a tar stream on stdout.
func archiveCommand(dir, base string) []string {
	return []string{"tar", "-c", "-f", "-", "-C", dir, "--", base}
}

// srcName is the name a copy of src gets in a directory: its base name, or
// that of where it resolves to (for ".", "..").
func srcName(src, resolved string) (string, error) {
	b := path.Base(path.Clean(src))
	if b == "." || b == ".." || b == "/" {
		b = path.Base(resolved)
	}
	if b == "/" || b == "." || b == "" {
		return "", fmt.Errorf("cannot copy %s: name a directory below /", src)
	}
	return b, nil
}

// placement is where a copy goes: name in dir, over what is there (kind).
type placement struct {
	dir, name string
	there     kind
}

// place decides, like cp, where src (named name; a directory if srcDir)
// goes for dest: into dest when it is a directory, else as dest. dk, ck
// and pk are the kinds of dest, of name in dest, and of dest's directory.
// shown is dest as the user wrote it.
func place(shown, dest, name string, srcDir bool, dk, ck, pk kind) (placement, error) {
	trailing := strings.HasSuffix(dest, "/")
	dest = path.Clean(dest)
	var p placement
	switch {
	case dk.has("d"):
		p = placement{dest, name, ck}
		shown = strings.TrimSuffix(shown, "/") + "/" + name
	case trailing:
		if dk.missing() {
			return p, fmt.Errorf("%s: no such directory", shown)
		}
		return p, fmt.Errorf("%s is not a directory", shown)
	case dk.missing():
		if !pk.has("d") {
			return p, fmt.Errorf("cannot copy to %s: its directory %s does not exist", shown, path.Dir(dest))
		}
		p = placement{path.Dir(dest), path.Base(dest), dk}
	default:
		p = placement{path.Dir(dest), path.Base(dest), dk}
	}
	switch t := p.there; {
	case t.missing():
	case t.has("l"):
		return p, fmt.Errorf("%s is a symbolic link: give the path it points to, or remove it", shown)
	case srcDir && t.has("d"):
		return p, fmt.Errorf("%s exists: cp does not merge directories; remove it or copy to another name", shown)
	case srcDir:
		return p, fmt.Errorf("cannot copy a directory over %s, which is not a directory", shown)
	case t.has("d"):
		return p, fmt.Errorf("cannot copy a file over %s, which is a directory", shown)
	case !t.has("f"):
		return p, fmt.Errorf("%s is not a regular file: remove it first", shown)
	}
	return p, nil
}

// copyIn copies a host file or tree into the guest.
func copyIn(ctx context.Context, guest Guest, o CopyOptions, st vm.Streams) error {
	src := o.Src.Path
	k := hostKind(src)
	if err := checkSource(o.Src, k, o.Recursive); err != nil {
		return err
	}
	abs, err := resolveHost(src)
	if err != nil {
		return err
	}
	name, err := srcName(src, abs)
	if err != nil {
		return err
	}
	dest := o.Dest.Path
	clean := path.Clean(dest)
	kinds, _, err := probe(ctx, guest, st, "", dest, path.Join(clean, name), path.Dir(clean))
	if err != nil {
		return err
	}
	srcDir := k.has("d")
	p, err := place(o.Dest.String(), dest, name, srcDir, kinds[0], kinds[1], kinds[2])
	if err != nil {
		return err
	}

	pr, pw := io.Pipe()
	wrote := make(chan error, 1)
	go func() {
		w := tarcopy.NewWriter(pw, st.Err)
		err := w.AddTree(src, "t/"+p.name)
		if err == nil {
			err = w.AddEmpty("ok")
		}
		if err == nil {
			err = w.Close()
		}
		// An error cuts the stream short: the guest then keeps nothing.
		pw.CloseWithError(err)
		wrote <- err
	}()
	err = guest(ctx, extractCommand(p.dir, p.name, srcDir), vm.Streams{In: pr, Out: st.Err, Err: st.Err})
	// The guest reads no more: a writer still going stops.
	pr.CloseWithError(errStopped)
	werr := <-wrote
	switch {
	case werr != nil && !errors.Is(werr, errStopped):
		// The host's side failed first (a file went away, or cannot be
		// read): the guest's complaint about a short stream follows
		// from it.
		return fmt.Errorf("copying %s: %w", src, werr)
	case err != nil:
		return guestError("copying into the VM", err)
	}
	return nil
}

// errStopped ends the host's writing when the guest's side has ended.
var errStopped = errors.New("the guest stopped reading")

// copyOut copies a guest file or tree to the host.
func copyOut(ctx context.Context, guest Guest, o CopyOptions, st vm.Streams) (err error) {
	src := o.Src.Path
	kinds, resolved, err := probe(ctx, guest, st, src, src)
	if err != nil {
		return err
	}
	k := kinds[0]
	if err := checkSource(o.Src, k, o.Recursive); err != nil {
		return err
	}
	if resolved == "" {
		return fmt.Errorf("%s vanished during the copy", o.Src)
	}
	name, err := srcName(src, resolved)
	if err != nil {
		return err
	}
	dest := o.Dest.Path
	clean := path.Clean(dest)
	srcDir := k.has("d")
	p, err := place(dest, dest, name, srcDir, hostKind(clean), hostKind(path.Join(clean, name)), hostKind(path.Dir(clean)))
	if err != nil {
		return err
	}

	tmp, err := os.MkdirTemp(p.dir, ".bcvk-cp-")
	if err != nil {
		return fmt.Errorf("cannot copy into %s: %w", p.dir, err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", tmp, rerr))
		}
	}()
	pr, pw := io.Pipe()
	type result struct {
		isDir bool
		err   error
	}
	extracted := make(chan result, 1)
	go func() {
		isDir, err := tarcopy.Extract(pr, tmp, p.name)
		if err == nil {
			// tar pads its stream to whole records after the end.
			_, err = io.Copy(io.Discard, pr)
		}
		// On failure the guest's side finds no reader and stops.
		pr.CloseWithError(err)
		extracted <- result{isDir, err}
	}()
	err = guest(ctx, archiveCommand(path.Dir(resolved), path.Base(resolved)), vm.Streams{Out: pw, Err: st.Err})
	if err != nil {
		pw.CloseWithError(err)
	} else {
		pw.Close()
	}
	x := <-extracted
	switch {
	case x.err != nil && (err == nil || !errors.Is(x.err, err)):
		return fmt.Errorf("copying %s: %w", o.Src, x.err)
	case err != nil:
		return guestError("copying out of the VM", err)
	case x.isDir != srcDir:
		return fmt.Errorf("%s changed during the copy", o.Src)
	}
	target := path.Join(p.dir, p.name)
	if now := hostKind(target); now.has("l") || now.has("d") || srcDir && !now.missing() {
		return fmt.Errorf("%s appeared during the copy: nothing was copied", target)
	}
	return renameInto(path.Join(tmp, p.name), target, srcDir)
}

// renameInto moves the finished copy into place. A directory moved to
// another parent must be writable (its ".." changes): a read-only one is
// made writable for the move.
func renameInto(from, to string, isDir bool) error {
	fi, err := os.Lstat(from)
	if err != nil {
		return err
	}
	if !isDir || fi.Mode()&0o200 != 0 {
		return os.Rename(from, to)
	}
	if err := os.Chmod(from, fi.Mode().Perm()|0o200); err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return os.Chmod(to, fi.Mode().Perm())
}

// checkSource says what is wrong with copying src, of kind k.
func checkSource(src Endpoint, k kind, recursive bool) error {
	switch {
	case !k.has("e"):
		if k.has("l") {
			return fmt.Errorf("%s is a symbolic link to nothing", src)
		}
		return fmt.Errorf("%s: no such file or directory", src)
	case k.has("d") && !recursive:
		return fmt.Errorf("%s is a directory: use -r", src)
	case !k.has("d") && !k.has("f"):
		return fmt.Errorf("%s is not a regular file or directory", src)
	}
	return nil
}

// resolveHost is src with links followed, as an absolute path.
func resolveHost(src string) (string, error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// guestDir makes a relative guest directory start with "./", so that no
// command takes it for an option.
func guestDir(dir string) string {
	if path.IsAbs(dir) || strings.HasPrefix(dir, "./") {
		return dir
	}
	return "./" + dir
}

// guestError explains a failed SSH call: ssh's own failure (255), or the
// guest command's, whose message went to stderr.
func guestError(what string, err error) error {
	var ee *vm.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if ee.Code == 255 {
		return fmt.Errorf("%s: ssh failed (status 255): is the VM still running? (`bcvk ephemeral ps`)", what)
	}
	if ee.Message != "" {
		return fmt.Errorf("%s: %s", what, ee.Message)
	}
	return fmt.Errorf("%s failed in the guest with status %d (its message is above; cp needs tar, mktemp and readlink in the guest)", what, ee.Code)
}
