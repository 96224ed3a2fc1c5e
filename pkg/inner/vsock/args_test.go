package vsock

import (
	"reflect"
	"testing"
)

func TestBackendArgs(t *testing.T) {
	got := BackendArgs(BackendConfig{Socket: "/run/bcvk/vsock-backend.sock", UDSPath: "/run/bcvk/vm.vsock"})
	want := []string{"--guest-cid=3", "--socket=/run/bcvk/vsock-backend.sock", "--uds-path=/run/bcvk/vm.vsock", "--tx-buffer-size=24576"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = BackendArgs(BackendConfig{GuestCID: 9, Socket: "b", UDSPath: "u"})
	want = []string{"--guest-cid=9", "--socket=b", "--uds-path=u", "--tx-buffer-size=24576"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("explicit CID: got %q, want %q", got, want)
	}
}

func TestUserDeviceArgs(t *testing.T) {
	got := UserDeviceArgs("/run/bcvk/vsock-backend.sock")
	want := []string{
		"-chardev", "socket,id=vsock,path=/run/bcvk/vsock-backend.sock",
		"-device", "vhost-user-vsock-pci,chardev=vsock",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = UserDeviceArgs("/tmp/a,b.sock")
	if got[1] != "socket,id=vsock,path=/tmp/a,,b.sock" {
		t.Fatalf("comma not escaped: %q", got)
	}
}

func TestKernelDeviceArgs(t *testing.T) {
	got := KernelDeviceArgs(1234567, 3)
	want := []string{"-device", "vhost-vsock-pci,guest-cid=1234567,vhostfd=3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestNotifySocket(t *testing.T) {
	if got, want := NotifySocket(40123), "vsock-stream:2:40123"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
