package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode"
)

// FuzzModules builds a modules dir at /usr/lib/modules/6.1 from the input,
// one entry per line: "m PATH" (a module), "g PATH" (a gzip module),
// "p PATH" (a FIFO), "l PATH TARGET" ("$OUT" in TARGET is a directory
// outside the root with a complete modules dir of secret files), "d LINE"
// (a modules.dep line), "b LINE" (a modules.builtin line); PATH is inside
// the root. Build must not panic or hang, must never put a file from
// outside the root into the archive, and must fail only with an error that
// names the modules dir or a path in it, without control characters.
func FuzzModules(f *testing.F) {
	for _, s := range []string{
		"d kernel/fs/fuse/fuse.ko:\nm usr/lib/modules/6.1/kernel/fs/fuse/fuse.ko",
		"d kernel/virtiofs.ko.gz: kernel/fuse.ko\ng usr/lib/modules/6.1/kernel/virtiofs.ko.gz\nm usr/lib/modules/6.1/kernel/fuse.ko",
		"d kernel/fuse.ko.xz:\nl usr/lib/modules/6.1/kernel/fuse.ko.xz $OUT/secret",
		"l usr/lib/modules/6.1 $OUT/usr/lib/modules/6.1",
		"l usr/lib/modules $OUT/usr/lib/modules",
		"d kernel/fuse.ko: ../../../../../../../../../../$OUT/secret.ko",
		"d kernel/fuse.ko: /../../../../$OUT/secret.ko\nm usr/lib/modules/6.1/kernel/fuse.ko",
		"d kernel/fuse.ko:\nl usr/lib/modules/6.1/kernel $OUT/usr/lib/modules/6.1/kernel",
		"d kernel/fuse.ko:\nl usr/lib/modules/6.1/kernel/fuse.ko ../../../../../../../../$OUT/secret",
		"d kernel/fuse.ko:\nl usr/lib/modules/6.1/kernel/fuse.ko /dev/zero",
		"d kernel/fuse.ko:\np usr/lib/modules/6.1/kernel/fuse.ko",
		"l usr/lib/modules/6.1/modules.dep /proc/self/environ",
		"l usr/lib/modules/6.1/modules.builtin $OUT/secret",
		"d kernel/fuse.ko: kernel/\x1b[2J.ko\nm usr/lib/modules/6.1/kernel/fuse.ko",
		"b kernel/fuse.ko\nd kernel/overlay.ko: kernel/overlay.ko",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		root, out := t.TempDir(), t.TempDir()
		for _, rel := range []string{"secret", "secret.ko", "usr/lib/modules/6.1/kernel/fuse.ko", "usr/lib/modules/6.1/kernel/fs/fuse/fuse.ko"} {
			mkfile(t, filepath.Join(out, rel), string(secret))
		}
		mkfile(t, filepath.Join(out, "usr/lib/modules/6.1/modules.dep"), "kernel/fuse.ko:\nkernel/fs/fuse/fuse.ko:\n")
		var dep, builtin strings.Builder
		for i, line := range strings.Split(spec, "\n") {
			if i > 20 {
				break
			}
			kind, arg, _ := strings.Cut(line, " ")
			switch kind {
			case "d":
				dep.WriteString(arg + "\n")
				continue
			case "b":
				builtin.WriteString(arg + "\n")
				continue
			}
			fields := strings.Fields(arg)
			if len(fields) == 0 || strings.Contains(fields[0], "..") {
				continue
			}
			p := filepath.Join(root, filepath.Clean("/"+fields[0]))
			if !strings.HasPrefix(p, root+"/") {
				continue
			}
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			switch kind {
			case "m":
				writeFile(p, "MODULE")
			case "g":
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				_, _ = zw.Write([]byte("MODULE"))
				_ = zw.Close()
				writeFile(p, b.String())
			case "p":
				_ = syscall.Mkfifo(p, 0o644)
			case "l":
				if len(fields) == 2 {
					_ = os.Symlink(strings.ReplaceAll(fields[1], "$OUT", out), p)
				}
			}
		}
		for name, text := range map[string]string{"modules.dep": dep.String(), "modules.builtin": builtin.String()} {
			if p := filepath.Join(root, modDir, name); text != "" {
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				writeFile(p, text)
			}
		}
		initBin := filepath.Join(t.TempDir(), "init")
		mkfile(t, initBin, "#!init")
		var buf bytes.Buffer
		// The stand-in decompressor passes the file through, so that
		// anything it was handed shows in the archive.
		_, err := Build(&buf, Options{InitBinary: initBin, ImageMount: root, ModulesDir: modDir,
			Decompress: func(argv []string, in *os.File, out io.Writer) error {
				_, err := io.Copy(out, in)
				return err
			}})
		if bytes.Contains(buf.Bytes(), secret) {
			t.Fatalf("a file from outside the image root is in the initramfs (error %v)", err)
		}
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, modDir) {
				t.Fatalf("error that does not name what it checked: %v", err)
			}
			if strings.ContainsFunc(msg, unicode.IsControl) {
				t.Fatalf("error with control characters: %q", msg)
			}
		}
	})
}

// writeFile writes without blocking on a FIFO that an earlier line made.
func writeFile(p, data string) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return
	}
	_, _ = f.WriteString(data)
	_ = f.Close()
}
