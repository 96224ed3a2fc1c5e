package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/bcvk/bcvk/pkg/diskimage"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// parsePublish reads the -p values and checks that each host address and
// port can be bound now, so that a port in use fails before the boot
// rather than in podman after it.
func parsePublish(values []string) ([]spec.Publish, error) {
	var ps []spec.Publish
	for _, v := range values {
		p, err := spec.ParsePublish(v)
		if err != nil {
			return nil, fmt.Errorf("-p %w", err)
		}
		if err := checkPortFree(p); err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// checkPortFree binds the host address and port for a moment.
func checkPortFree(p spec.Publish) error {
	addr := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
	l, err := net.Listen("tcp", addr)
	if err == nil {
		return l.Close()
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("-p %s: %s is in use on this host: choose another host port (ss -ltnp shows who has it)", p, addr)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("-p %s: this user may not listen on port %d (ports below 1024 need root, or a lower net.ipv4.ip_unprivileged_port_start): choose a port of 1024 or more", p, p.HostPort)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("-p %s: %s is not an address of this host: give one of its addresses, or leave the address out (127.0.0.1)", p, p.HostIP)
	}
	return fmt.Errorf("-p %s: %w", p, err)
}

// parseDiskFiles reads the --mount-disk-file values and checks each file
// as the user: it must be a regular file this user can write (read, with
// :ro), in the format given (or detected), and a qcow2 must stand alone.
func parseDiskFiles(values []string, cwd string) ([]spec.AttachedDisk, error) {
	var ds []spec.AttachedDisk
	for _, v := range values {
		d, err := spec.ParseMountDiskFile(v, cwd)
		if err != nil {
			return nil, fmt.Errorf("--mount-disk-file %w", err)
		}
		if err := inspectDiskFile(&d); err != nil {
			return nil, fmt.Errorf("--mount-disk-file %s: %w", v, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func inspectDiskFile(d *spec.AttachedDisk) error {
	fi, err := os.Stat(d.Host)
	if err != nil {
		return fmt.Errorf("%w: give an existing raw or qcow2 file (qemu-img create -f qcow2 FILE 10G makes one)", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file: give a disk image file", d.Host)
	}
	// The container's QEMU may run as root: the user's own rights decide.
	mode := uint32(unix.R_OK | unix.W_OK)
	if d.ReadOnly {
		mode = unix.R_OK
	}
	if err := unix.Access(d.Host, mode); err != nil {
		if d.ReadOnly {
			return fmt.Errorf("you cannot read %s", d.Host)
		}
		return fmt.Errorf("you cannot write %s: attach it read-only with :ro, or fix its permissions", d.Host)
	}
	f, err := os.Open(d.Host)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := diskimage.Read(f)
	if err != nil {
		return err
	}
	if h.Backed {
		return fmt.Errorf("%s is a qcow2 file with a backing file, which the VM's container cannot reach: flatten it first (qemu-img convert -O qcow2 %s NEW)", d.Host, d.Host)
	}
	switch {
	case d.Format == "":
		d.Format = h.Format
	case d.Format == spec.FormatRaw && h.Format == diskimage.QCOW2:
		// The guest would see, and could overwrite, qcow2's own metadata.
		return fmt.Errorf("%s is a qcow2 file: attach it as qcow2 (leave the format out, or say qcow2)", d.Host)
	case d.Format == spec.FormatQCOW2 && h.Format != diskimage.QCOW2:
		return fmt.Errorf("%s is not a qcow2 file: attach it as raw", d.Host)
	}
	return nil
}

// parseSwap reads --add-swap: a size; a plain number is MiB.
func parseSwap(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := spec.ParseSize(v, 1<<20)
	if err != nil {
		return 0, fmt.Errorf("--add-swap: %w", err)
	}
	if n < spec.MinSwapBytes || n > spec.MaxSwapBytes {
		return 0, fmt.Errorf("--add-swap %s: give between 1M and 1T", v)
	}
	if n%4096 != 0 {
		return 0, fmt.Errorf("--add-swap %s: give a whole number of KiB pages of 4K, e.g. 512M", v)
	}
	return n, nil
}

// lookupItype finds --itype's type, or says where the names are.
func lookupItype(name string) (spec.InstanceType, error) {
	it, err := spec.LookupInstanceType(name)
	if err != nil {
		return it, usageError{fmt.Errorf("%w (--itype help lists them)", err)}
	}
	return it, nil
}

// unlessItypeHelp checks the arguments unless --itype help asks for the list.
func unlessItypeHelp(itype *string, check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if *itype == "help" {
			return nil
		}
		return check(cmd, args)
	}
}

// itypeHelp prints the instance types when --itype help was given.
func itypeHelp(itype string, w io.Writer) bool {
	if itype != "help" {
		return false
	}
	writeInstanceTypes(w)
	return true
}

// writeInstanceTypes lists --itype's names, for --itype help.
func writeInstanceTypes(w io.Writer) {
	fmt.Fprintf(w, "%-12s %5s %8s\n", "NAME", "VCPUS", "MEMORY")
	for _, n := range spec.InstanceTypeNames() {
		t, _ := spec.LookupInstanceType(n)
		mem := strconv.Itoa(t.MemoryMiB) + "M"
		if t.MemoryMiB%1024 == 0 {
			mem = strconv.Itoa(t.MemoryMiB/1024) + "G"
		}
		fmt.Fprintf(w, "%-12s %5d %8s\n", n, t.VCPUs, mem)
	}
}
