package qemu

import (
	"reflect"
	"strings"
	"testing"
)

func TestArgsTCG(t *testing.T) {
	got := Args(Config{
		Name: "vm1", Accel: "tcg", MemoryMiB: 2048, VCPUs: 2,
		Kernel: "/img/usr/lib/modules/6.1/vmlinuz", Initramfs: "/run/bcvk/initramfs.img",
		KernelArgs:     []string{"console=ttyS0,115200n8", "quiet"},
		VirtiofsSocket: "/run/bcvk/virtiofs.sock", RootTag: "rootfs", SSHForwardPort: 2222, NetProbePort: 2223,
		QMPSocket: "/run/bcvk/qmp.sock", SMBIOSCredentials: []string{"io.systemd.credential.binary:a=Yg=="},
	})
	want := []string{
		"-name", "bcvk-vm1,debug-threads=on",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35,sata=off,smbus=off,i8042=off,vmport=off", "-accel", "tcg,tb-size=256", "-cpu", "max,svm=off,vmx=off",
		"-smp", "2", "-m", "2048M",
		"-object", "memory-backend-memfd,id=mem,size=2048M,share=on",
		"-numa", "node,memdev=mem",
		"-kernel", "/img/usr/lib/modules/6.1/vmlinuz",
		"-initrd", "/run/bcvk/initramfs.img",
		"-append", "console=ttyS0,115200n8 quiet",
		"-chardev", "socket,id=rootfs,path=/run/bcvk/virtiofs.sock",
		"-device", "vhost-user-fs-pci,queue-size=1024,chardev=rootfs,tag=rootfs",
		"-netdev", "user,id=net0,net=10.0.76.0/24,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:2223-:1",
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "virtio-rng-pci",
		"-device", "vmgenid,guid=auto",
		"-device", "pvpanic", "-action", "panic=none",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-qmp", "unix:/run/bcvk/qmp.sock,server=on,wait=off",
		"-smbios", "type=11,value=io.systemd.credential.binary:a=Yg==",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestArgsKVMAndVsock(t *testing.T) {
	got := Args(Config{Name: "x", Accel: "kvm", MemoryMiB: 512, VCPUs: 1, Vsock: &Vsock{CID: 7, VhostFD: 3},
		Shares: []Share{{Tag: "bind0", Socket: "/run/b0.sock"}}})
	idx := func(s string) int {
		for i, a := range got {
			if a == s {
				return i
			}
		}
		return -1
	}
	if i := idx("-accel"); i < 0 || got[i+1] != "kvm" || got[i+3] != "host" {
		t.Fatalf("kvm accel/cpu wrong: %q", got)
	}
	if i := idx("socket,id=bind0,path=/run/b0.sock"); i < 0 || got[i+2] != "vhost-user-fs-pci,queue-size=1024,chardev=bind0,tag=bind0" {
		t.Fatalf("share device missing: %q", got)
	}
	if got[len(got)-1] != "vhost-vsock-pci,guest-cid=7,vhostfd=3" {
		t.Fatalf("vsock device missing: %q", got)
	}
}

// The userspace backend: a vhost-user device on its socket; --network none:
// no network device at all.
func TestArgsUserVsockNoNetwork(t *testing.T) {
	got := Args(Config{Name: "x", Accel: "tcg", MemoryMiB: 512, VCPUs: 1, NoNetwork: true,
		Vsock: &Vsock{BackendSocket: "/run/bcvk/vsock.sock"}})
	tail := got[len(got)-4:]
	if want := []string{"-chardev", "socket,id=vsock,path=/run/bcvk/vsock.sock", "-device", "vhost-user-vsock-pci,chardev=vsock"}; !reflect.DeepEqual(tail, want) {
		t.Fatalf("got %q, want %q at the end", tail, want)
	}
	for _, a := range got {
		if strings.Contains(a, "netdev") || strings.Contains(a, "virtio-net") {
			t.Fatalf("a network device with --network none: %q", got)
		}
	}
}

func TestArgsDrives(t *testing.T) {
	got := Args(Config{Name: "x", Accel: "tcg", MemoryMiB: 512, VCPUs: 1, SSHForwardPort: 2222, NetProbePort: 2223,
		Drives: []Drive{{Path: "/bcvk/disks/disk.qcow2", Format: "qcow2", Serial: "output"},
			{Path: "/run/bcvk/cidata.img", Format: "raw", Serial: "cidata", ReadOnly: true}}})
	want := []string{
		"-drive", "if=none,id=disk0,file=/bcvk/disks/disk.qcow2,format=qcow2,cache=writeback,discard=unmap,werror=report,rerror=report",
		"-device", "virtio-blk-pci,drive=disk0,serial=output",
		"-drive", "if=none,id=disk1,file=/run/bcvk/cidata.img,format=raw,readonly=on,cache=writeback,rerror=report",
		"-device", "virtio-blk-pci,drive=disk1,serial=cidata",
		"-netdev",
	}
	for i, a := range got {
		if a == "-drive" {
			if !reflect.DeepEqual(got[i:i+len(want)], want) {
				t.Fatalf("got %q", got[i:i+len(want)])
			}
			return
		}
	}
	t.Fatalf("no -drive in %q", got)
}

func TestArgsErofsRoot(t *testing.T) {
	got := Args(Config{
		Name: "vm1", Accel: "tcg", MemoryMiB: 2048, VCPUs: 2,
		Kernel: "/img/usr/lib/modules/6.1/vmlinuz", Initramfs: "/run/bcvk/initramfs.img",
		KernelArgs:     []string{"console=ttyS0,115200n8"},
		VirtiofsSocket: "/run/bcvk/virtiofs.sock", RootTag: "rootfs",
		RootDisk: "/bcvk/erofs/0123.erofs", RootDiskSerial: "bcvk-root",
		SSHForwardPort: 2222, NetProbePort: 2223, QMPSocket: "/run/bcvk/qmp.sock",
		Shares: []Share{{Tag: "bind0", Socket: "/run/bcvk/share0.sock"}},
	})
	want := []string{
		"-name", "bcvk-vm1,debug-threads=on",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35,sata=off,smbus=off,i8042=off,vmport=off", "-accel", "tcg,tb-size=256", "-cpu", "max,svm=off,vmx=off",
		"-smp", "2", "-m", "2048M",
		"-object", "memory-backend-memfd,id=mem,size=2048M,share=on",
		"-numa", "node,memdev=mem",
		"-kernel", "/img/usr/lib/modules/6.1/vmlinuz",
		"-initrd", "/run/bcvk/initramfs.img",
		"-append", "console=ttyS0,115200n8",
		"-drive", "if=none,id=root,file=/bcvk/erofs/0123.erofs,format=raw,readonly=on,cache=writeback",
		"-device", "virtio-blk-pci,drive=root,serial=bcvk-root",
		"-chardev", "socket,id=bind0,path=/run/bcvk/share0.sock",
		"-device", "vhost-user-fs-pci,queue-size=1024,chardev=bind0,tag=bind0",
		"-netdev", "user,id=net0,net=10.0.76.0/24,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:2223-:1",
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "virtio-rng-pci",
		"-device", "vmgenid,guid=auto",
		"-device", "pvpanic", "-action", "panic=none",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-qmp", "unix:/run/bcvk/qmp.sock,server=on,wait=off",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestArgsReadOnlyDriveAndForwards(t *testing.T) {
	got := Args(Config{Name: "x", Accel: "tcg", MemoryMiB: 512, VCPUs: 1, SSHForwardPort: 2222, NetProbePort: 2223,
		Drives:   []Drive{{Path: "/bcvk/attached/disk0", Format: "raw", Serial: "data", ReadOnly: true}},
		Forwards: []Forward{{ContainerPort: 30000, GuestPort: 80}, {ContainerPort: 30001, GuestPort: 8443}}})
	want := []string{
		"-drive", "if=none,id=disk0,file=/bcvk/attached/disk0,format=raw,readonly=on,cache=writeback,rerror=report",
		"-device", "virtio-blk-pci,drive=disk0,serial=data",
		"-netdev", "user,id=net0,net=10.0.76.0/24,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:2223-:1,hostfwd=tcp::30000-:80,hostfwd=tcp::30001-:8443",
	}
	for i, a := range got {
		if a == "-drive" {
			if !reflect.DeepEqual(got[i:i+len(want)], want) {
				t.Fatalf("got %q", got[i:i+len(want)])
			}
			return
		}
	}
	t.Fatalf("no -drive in %q", got)
}
