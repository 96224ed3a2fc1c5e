package guestinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// newRoot is where the image's root is assembled before the handover.
const newRoot = "/sysroot"

// rootMountTimeout bounds the wait for the virtiofs device to appear.
const rootMountTimeout = 10 * time.Second

// Run is the guest's /init. It only returns by exec'ing the image's init; on
// failure it prints why and powers the VM off so the host sees the end.
func Run() {
	err := run()
	fmt.Fprintf(os.Stderr, "%s%v\n", ErrorMarker, err)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // PID 1 must not exit
}

func run() error {
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	if con, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			_ = unix.Dup2(int(con.Fd()), fd)
		}
	}
	logf("started")
	var cfg Config
	b, err := os.ReadFile(ConfigPath)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ConfigPath, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("reading %s: %w", ConfigPath, err)
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	// The vsock modules are loaded: the report channel, if any, can come
	// up while the root is mounted.
	rch := make(chan *reporter, 1)
	go func() { rch <- dialReporter(cfg.ReportPort) }()
	root := "virtiofs"
	if cfg.RootDiskSerial != "" {
		root = "erofs"
		if err := mountErofsRoot(cfg.RootDiskSerial, cfg.MissingModules); err != nil {
			return err
		}
	} else if err := mountRoot(cfg.RootTag); err != nil {
		return err
	}
	rep := <-rch
	defer rep.close()
	rep.step("%s (%s)", ReportRoot, root)
	if err := unix.Mount("tmpfs", "/overlay", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mounting the tmpfs for the writable layer: %w", err)
	}
	for _, d := range []string{"/overlay/upper", "/overlay/work"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("overlay", "/sysroot", "overlay", 0,
		"lowerdir=/lower,upperdir=/overlay/upper,workdir=/overlay/work"); err != nil {
		if missing(cfg.MissingModules, "overlay") {
			return fmt.Errorf("the image's kernel has no overlay file system (neither built in nor as a module), so bcvk cannot make its root writable: %w", err)
		}
		return fmt.Errorf("mounting the writable overlay root: %w", err)
	}
	// systemd keeps a /run that is already mounted, as after any
	// initramfs; bcvk's mounts below it are then in place before it starts.
	if err := unix.Mount("tmpfs", "/sysroot/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=20%,nr_inodes=800k"); err != nil {
		return fmt.Errorf("mounting /run: %w", err)
	}
	for _, m := range cfg.Mounts {
		if err := mountShare(newRoot, m); err != nil {
			return err
		}
	}
	if cfg.Storage != nil {
		if err := setupStorage(newRoot, cfg.Storage); err != nil {
			return err
		}
	}
	rep.step("%s (%d)", ReportShares, len(cfg.Mounts))
	init, err := findInit(cfg.Init)
	if err != nil {
		return err
	}
	// Free the initramfs copies before they become unreachable.
	_ = os.RemoveAll("/modules")
	if err := unix.Mount("/dev", "/sysroot/dev", "", unix.MS_MOVE, ""); err != nil {
		_ = unix.Unmount("/dev", unix.MNT_DETACH)
	}
	if err := os.Chdir("/sysroot"); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the new root into place: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into the new root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	logf("%s%s", HandoverMessage, init)
	rep.step("%s%s", ReportHandover, init)
	rep.close()
	return unix.Exec(init, append([]string{init}, os.Args[1:]...), os.Environ())
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, Marker+format+"\n", args...)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading kernel module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// mountRoot mounts the virtiofs share read-only at /lower. The device can
// appear a moment after init starts, so failures are retried until a deadline.
func mountRoot(tag string) error {
	deadline := time.Now().Add(rootMountTimeout)
	for {
		err := unix.Mount(tag, "/lower", "virtiofs", unix.MS_RDONLY, "")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mounting the image root (virtiofs tag %q): %w; the image's kernel needs virtiofs support (CONFIG_VIRTIO_FS)", tag, err)
		}
		time.Sleep(50 * time.Millisecond) // no context in an init; bounded by deadline
	}
}

// mountShare mounts a virtiofs share at m.Path inside root. The path is
// resolved inside root, so that the bootc layout's links (/mnt ->
// var/mnt, even absolute ones) lead where the image means.
func mountShare(root string, m Mount) error {
	target, err := mkdirIn(root, m.Path, 0o755)
	if err != nil {
		return fmt.Errorf("making the mount point %s: %w", m.Path, err)
	}
	var flags uintptr
	if m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(m.Tag, target, "virtiofs", flags, ""); err != nil {
		return fmt.Errorf("mounting the shared directory at %s (virtiofs tag %s): %w", m.Path, m.Tag, err)
	}
	logf("mounted %s at %s", m.Tag, m.Path)
	return nil
}

func findInit(candidates []string) (string, error) {
	for _, c := range candidates {
		// Resolve within the new root: links are absolute from the image's view.
		if fi, err := os.Stat(filepath.Join("/sysroot", c)); err == nil && !fi.IsDir() {
			return c, nil
		}
		if target, err := os.Readlink(filepath.Join("/sysroot", c)); err == nil {
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(c), target)
			}
			if fi, err := os.Stat(filepath.Join("/sysroot", target)); err == nil && !fi.IsDir() {
				return c, nil
			}
		}
	}
	return "", fmt.Errorf("the image has no init (checked %s); a bootc image needs systemd", strings.Join(candidates, ", "))
}

func missing(list []string, name string) bool {
	for _, m := range list {
		if m == name {
			return true
		}
	}
	return false
}
