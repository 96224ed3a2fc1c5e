package todisk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/tail"
	"github.com/bcvk/bcvk/pkg/units"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Named limits.
const (
	// DefaultInstallTimeout bounds `bootc install to-disk` in the VM; a copy
	// of a few GiB under TCG takes minutes.
	DefaultInstallTimeout = 30 * time.Minute
	// MinDefaultSize is the smallest default disk: max(2 x image, 4 GiB).
	MinDefaultSize int64 = 4 << 30
	// overhead is what partitions and file system need beyond the image.
	overhead int64 = 384 << 20
	// installTailLines of the installer's output go into its error.
	installTailLines = 15
	// maxLineBytes of one line of the installer's output are kept.
	maxLineBytes = 4096
)

// Options for Run.
type Options struct {
	Image   string
	Disk    string
	Format  string // "" picks it from Disk's extension
	Size    int64  // bytes; 0 is the default
	Install Install
	DryRun  bool
	// Overwrite allows replacing a file bcvk did not make.
	Overwrite bool
	// VM is the installer VM (memory, vCPUs, accelerator).
	VM             spec.Spec
	ReadyTimeout   time.Duration
	InstallTimeout time.Duration
	RunnerImage    string
	Version        string
	Progress       progress.Mode
	Pull           vm.PullOptions
}

// DefaultSize is max(2 x image size, 4 GiB), in whole MiB.
func DefaultSize(imageSize int64) int64 {
	return roundMiB(max(2*imageSize, MinDefaultSize))
}

func roundMiB(n int64) int64 { return (n + (1<<20 - 1)) &^ (1<<20 - 1) }

// Run makes (or reuses) the disk. Dry runs print would-reuse or
// would-regenerate on Out.
func Run(ctx context.Context, rt *vm.Runtime, o Options, st vm.Streams) (err error) {
	pc := rt.Podman
	status := progress.New(st.Err, o.Progress)
	var cl vm.Cleanups
	defer func() {
		status.End(err == nil)
		err = cl.Finish(err)
	}()
	format, err := FormatFor(o.Disk, o.Format)
	if err != nil {
		return err
	}
	disk, err := filepath.Abs(o.Disk)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Dir(disk)); err != nil || !fi.IsDir() {
		return fmt.Errorf("the directory of %s does not exist: create it first", o.Disk)
	}

	status.Start("Checking podman and images")
	var img *podman.Image
	if o.DryRun {
		// A dry run changes nothing: no pull.
		if img, err = pc.InspectImage(ctx, o.Image); errors.Is(err, podman.ErrNoImage) {
			status.End(true)
			fmt.Fprintf(st.Err, "%s is not in local storage, so no disk can match it\n", o.Image)
			fmt.Fprintln(st.Out, "would-regenerate")
			return nil
		}
	} else {
		img, err = rt.Preflight(ctx, o.Image, o.RunnerImage, o.Pull, status)
	}
	if err != nil {
		return err
	}
	size := o.Size
	if size == 0 {
		size = DefaultSize(img.Size)
	}
	size = roundMiB(size)
	if err := checkSize(size, img.Size, o.Image); err != nil {
		return err
	}
	if o.Install.RootSize != "" {
		rs, _ := spec.ParseSize(o.Install.RootSize, 1) // validated by the caller
		if rs > size-(130<<20) {
			return fmt.Errorf("--root-size %s does not fit on a %s disk (the boot partitions take 128 MiB)", o.Install.RootSize, units.BytesSize(size))
		}
	}
	o.Install.Source, o.Install.Target = img.ID, targetFor(o.Image)
	key := Key{
		Version: keyVersion, ImageDigest: img.Digest, ImageID: img.ID, ImageRef: o.Image,
		Format: format, DiskSize: size, Filesystem: o.Install.Filesystem, RootSize: o.Install.RootSize,
		KernelArgs: append([]string{}, o.Install.KernelArgs...),
	}
	v, err := Decide(disk, key)
	if err != nil {
		return err
	}
	status.End(true)
	if o.DryRun {
		if v.Decision == Reuse {
			fmt.Fprintln(st.Out, "would-reuse")
			return nil
		}
		if v.Why != "" {
			fmt.Fprintf(st.Err, "%s: %s\n", o.Disk, v.Why)
		}
		if v.Decision == Foreign && !o.Overwrite {
			fmt.Fprintf(st.Err, "A real run would refuse to replace it without --overwrite.\n")
		}
		fmt.Fprintln(st.Out, "would-regenerate")
		return nil
	}
	switch v.Decision {
	case Reuse:
		fmt.Fprintf(st.Err, "Reusing %s: it was made from %s (%s) with the same options\n", o.Disk, o.Image, shortDigest(img))
		return nil
	case Foreign:
		if !o.Overwrite {
			return fmt.Errorf("%s already exists and %s: remove it, choose another path, or pass --overwrite", o.Disk, v.Why)
		}
	case Regenerate:
		fmt.Fprintf(st.Err, "Regenerating %s (%s)\n", o.Disk, v.Why)
	}
	if err := checkSpace(filepath.Dir(disk), img.Size, format); err != nil {
		return err
	}

	start := time.Now()
	// The work happens in a private directory beside DISK, so the final
	// rename is atomic and a failure leaves nothing at DISK.
	tmp, err := os.MkdirTemp(filepath.Dir(disk), "."+filepath.Base(disk)+".bcvk-")
	if err != nil {
		return fmt.Errorf("making a work directory beside %s: %w", o.Disk, err)
	}
	cl.Add(func(context.Context) error { return os.RemoveAll(tmp) })

	work := "disk." + installFormat(format)
	sp := o.VM
	sp.Name = vm.RandomName() + "-to-disk"
	sp.Disks = []spec.Disk{{File: work, Format: installFormat(format), Serial: Serial, CreateSize: size}}
	vm.Report(rt.Prune(ctx))
	installer, err := rt.Launch(ctx, vm.Config{
		Image: o.Image, Preflighted: img, Spec: sp, RunnerImage: o.RunnerImage, Version: o.Version,
		Labels: map[string]string{LabelToDisk: "1"}, DisksDir: tmp, Owned: true,
		// The installer reads the image from the host's storage, as real
		// bootc does (--source-imgref containers-storage:ID).
		HostStorage: true,
	}, status, &cl)
	if err != nil {
		return err
	}
	if err := rt.WaitReady(ctx, installer.Name, installer.StateDir, o.ReadyTimeout, status); err != nil {
		return err
	}
	if err := runInstall(ctx, rt, installer.Name, installer.StateDir, o, status); err != nil {
		return explainFull(err, filepath.Dir(disk), tmp)
	}

	status.Start("Powering off the installer VM")
	sctx, cancel := context.WithTimeout(ctx, time.Duration(vm.StopTimeoutFor(sp)+30)*time.Second)
	defer cancel()
	if err := pc.Stop(sctx, installer.Name, vm.StopTimeoutFor(sp)); err != nil {
		return err
	}
	if code, err := pc.Wait(sctx, installer.Name); err != nil {
		return err
	} else if code != 0 {
		return fmt.Errorf("the installer VM did not power off cleanly (exit status %d), so the disk may be incomplete; see `podman logs %s`", code, installer.Name)
	}

	out := work
	if format != installFormat(format) {
		status.Start("Converting to " + format)
		name := sp.Name + "-convert"
		cl.Add(func(ctx context.Context) error { return pc.Remove(ctx, name) })
		final := "disk." + format
		args := ConvertPodmanArgs(ConvertConfig{
			Name: name, RunnerImage: o.RunnerImage, Version: o.Version, Dir: tmp,
			From: work, To: final, Format: format,
		})
		if err := pc.Attach(ctx, podman.Attached{Args: args}); err != nil {
			return fmt.Errorf("converting the disk to %s: %w", format, err)
		}
		out = final
	}

	status.Start("Writing " + o.Disk)
	if err := finish(tmp, out, disk, key); err != nil {
		return err
	}
	status.End(true)
	fmt.Fprintf(st.Err, "Wrote %s (%s, %s) from %s in %.0fs\n", o.Disk, format, units.BytesSize(size), o.Image, time.Since(start).Seconds())
	return nil
}

// runInstall runs the installer in the VM, streaming its output, and
// reports its status and last lines when it fails.
func runInstall(ctx context.Context, rt *vm.Runtime, name, dir string, o Options, status *progress.Status) error {
	status.Start("Installing: " + strings.Join(InstallArgs(o.Install), " "))
	out := tail.New(installTailLines, maxLineBytes, status.Log)
	timeout := o.InstallTimeout
	if timeout <= 0 {
		timeout = DefaultInstallTimeout
	}
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := rt.ExplainLostVM(ictx, name, dir, rt.ExecSSH(ictx, name, spec.DefaultSSHUser, nil, InstallArgs(o.Install),
		vm.Streams{In: strings.NewReader(""), Out: out, Err: out}))
	out.Flush()
	if err == nil {
		return nil
	}
	last := ""
	if lines := out.Lines(); len(lines) > 0 {
		last = "\nLast installer output:\n  " + strings.Join(lines, "\n  ")
	}
	var ee *vm.ExitError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case ictx.Err() != nil:
		return fmt.Errorf("bootc install to-disk did not finish within %s (raise --install-timeout)%s", timeout, last)
	case errors.As(err, &ee) && ee.Code == 255 && ee.Message != "":
		return fmt.Errorf("the installer VM stopped: %s%s", strings.TrimPrefix(ee.Message, "the VM ended while the command ran: "), last)
	case errors.As(err, &ee) && ee.Code == 255:
		return fmt.Errorf("lost the SSH connection to the installer VM (ssh exit status 255)%s", last)
	case errors.As(err, &ee):
		return fmt.Errorf("bootc install to-disk failed with exit status %d%s", ee.Code, last)
	}
	return fmt.Errorf("running bootc install to-disk: %w", err)
}

// finish records the key on work/name, flushes it and renames it to DISK.
// The runner container can write in work, so nothing there is followed:
// the file is opened and renamed relative to directory descriptors, and
// what lands at DISK must be the regular file that was checked.
func finish(work, name, disk string, key Key) error {
	wd, err := unix.Open(work, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: work, Err: err}
	}
	defer unix.Close(wd)
	fd, err := unix.Openat(wd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("the finished disk %s is a symlink, not the file the installer wrote: refusing to move it to %s", filepath.Join(work, name), disk)
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Join(work, name), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("the finished disk %s is not a regular file: refusing to move it to %s", filepath.Join(work, name), disk)
	}
	// A disk image needs no exec or set-id bits, and one that others can
	// write is not reused (Decide).
	if perm := st.Mode & 0o644; perm != st.Mode&0o7777 {
		if err := unix.Fchmod(fd, perm); err != nil {
			return fmt.Errorf("setting the disk's mode: %w", err)
		}
	}
	if err := writeKey(fd, key); err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			logrus.Warnf("%s keeps no extended attributes: the disk cannot be reused next time", filepath.Dir(disk))
		} else {
			return fmt.Errorf("recording the cache key on the disk: %w", err)
		}
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("flushing the disk: %w", err)
	}
	dd, err := unix.Open(filepath.Dir(disk), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(disk), Err: err}
	}
	defer unix.Close(dd)
	if err := unix.Renameat(wd, name, dd, filepath.Base(disk)); err != nil {
		return fmt.Errorf("moving the disk into place: %w", err)
	}
	// The name could have been swapped between the open and the rename.
	var got unix.Stat_t
	if err := unix.Fstatat(dd, filepath.Base(disk), &got, unix.AT_SYMLINK_NOFOLLOW); err != nil || got.Dev != st.Dev || got.Ino != st.Ino {
		_ = unix.Unlinkat(dd, filepath.Base(disk), 0)
		return fmt.Errorf("what arrived at %s was not the checked disk (something changed the work directory): it was removed", disk)
	}
	return nil
}

// checkSize refuses a disk that cannot hold the image.
func checkSize(size, imageSize int64, image string) error {
	if need := roundMiB(imageSize + overhead); size < need {
		return fmt.Errorf("--disk-size %s is too small for %s (%s): give at least %s",
			units.BytesSize(size), image, units.BytesSize(imageSize), units.BytesSize(need))
	}
	return nil
}

// freeSpace is what an unprivileged writer can still put in dir's file system.
func freeSpace(dir string) (int64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	return int64(fs.Bavail) * fs.Bsize, nil
}

// nearlyFull is free space below which a failed install is blamed on the
// file system: QEMU reports the failed writes to the guest as I/O errors
// (werror=report), which alone do not say why.
const nearlyFull = 64 << 20

// explainFull says so when the install failed with the disk's file system
// (nearly) full.
func explainFull(err error, dir, work string) error {
	if free, ferr := freeSpace(work); ferr == nil && free < nearlyFull {
		return fmt.Errorf("%s ran out of space during the install (%s free now): the disk's writes failed, which the installer saw as I/O errors; free some space or write the disk elsewhere\n%w", dir, units.BytesSize(free), err)
	}
	return err
}

// checkSpace fails early when the directory cannot hold the disk: the
// written data is about the image's size, twice while converting.
func checkSpace(dir string, imageSize int64, format string) error {
	free, err := freeSpace(dir)
	if err != nil {
		return nil // cannot tell; the VM's write will say
	}
	need := imageSize + overhead
	if installFormat(format) != format {
		need *= 2
	}
	if free < need {
		return fmt.Errorf("not enough free space in %s: %s free, about %s needed; free some space or write the disk elsewhere", dir, units.BytesSize(free), units.BytesSize(need))
	}
	return nil
}

func shortDigest(img *podman.Image) string {
	d := img.Digest
	if d == "" {
		d = img.ID
	}
	if i := strings.IndexByte(d, ':'); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}
