package supervisor

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/spec"
)

// WriteCommandLines prints the command lines bcvk-inner would run for the
// spec given as runner flags (`bcvk-inner cmdline`), so that a benchmark's
// floor is bcvk's own line by construction. Each line is a program's role,
// then its argv, all separated by tabs; nothing is started.
func WriteCommandLines(args []string, o Options, w io.Writer) error {
	fs := flag.NewFlagSet("bcvk-inner cmdline", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	parse := specFlags(fs)
	fs.StringVar(&o.ImageRoot, "image-root", o.ImageRoot, "the mounted image")
	fs.StringVar(&o.RunDir, "run-dir", o.RunDir, "where sockets and the initramfs go")
	keyFile := fs.String("ssh-key", "", "a public key file to pass as the tmpfiles.extra credential")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sp, err := parse()
	if err != nil {
		return err
	}
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		sp.SSHAuthorizedKey = string(b)
	}
	k, err := kernel.Find(o.ImageRoot)
	if err != nil {
		return err
	}
	img, err := readImage(o.ImageRoot, sp)
	if err != nil {
		return err
	}
	cfg, err := qemuConfig(o, sp, img, k.Image, filepath.Join(o.RunDir, "initramfs.img"))
	if err != nil {
		return err
	}
	// Printing never probes: auto is what a host without KVM gets.
	cfg.Accel = sp.Accel
	if cfg.Accel == spec.AccelAuto {
		cfg.Accel = spec.AccelTCG
	}
	mc := machineConfig(o, sp, cfg)
	lines := [][]string{}
	for _, h := range mc.Helpers {
		lines = append(lines, append([]string{"virtiofsd", h.Socket}, h.Argv...))
	}
	lines = append(lines, append([]string{"qemu", cfg.QMPSocket}, mc.QEMU...))
	for _, l := range lines {
		for _, a := range l {
			if strings.ContainsAny(a, "\t\n") {
				return fmt.Errorf("argument %q holds a tab or newline, which this format cannot carry", a)
			}
		}
		if _, err := fmt.Fprintln(w, strings.Join(l, "\t")); err != nil {
			return err
		}
	}
	return nil
}
