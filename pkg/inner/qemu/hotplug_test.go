package qemu

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/inner/qemu/qmptest"
)

// The ports come before every device QEMU places itself, in one slot.
func TestArgsHotplugPorts(t *testing.T) {
	got := Args(Config{Name: "x", Accel: "tcg", MemoryMiB: 512, VCPUs: 1, Kernel: "/k", Initramfs: "/i",
		VirtiofsSocket: "/run/v.sock", RootTag: "rootfs", HotplugPorts: 3, NoNetwork: true, QMPSocket: "/run/q.sock"})
	want := []string{
		"-append", "",
		"-device", "pcie-root-port,id=hp0,chassis=1,bus=pcie.0,addr=0x1c.0,multifunction=on",
		"-device", "pcie-root-port,id=hp1,chassis=2,bus=pcie.0,addr=0x1c.1",
		"-device", "pcie-root-port,id=hp2,chassis=3,bus=pcie.0,addr=0x1c.2",
		"-chardev", "socket,id=rootfs,path=/run/v.sock",
	}
	for i, a := range got {
		if a == "-append" {
			if !reflect.DeepEqual(got[i:i+len(want)], want) {
				t.Fatalf("got\n%q\nwant\n%q", got[i:i+len(want)], want)
			}
			break
		}
	}
	one := strings.Join(Args(Config{HotplugPorts: 1}), " ")
	if !strings.Contains(one, "pcie-root-port,id=hp0,chassis=1,bus=pcie.0,addr=0x1c.0 ") {
		t.Errorf("one port: %s", one)
	}
	if none := strings.Join(Args(Config{}), " "); strings.Contains(none, "pcie-root-port") {
		t.Errorf("ports without asking: %s", none)
	}
}

func TestHotplugShare(t *testing.T) {
	var got []string
	_, q := serve(t, func(_ *qmptest.Server, cmd string, args json.RawMessage) (any, string) {
		got = append(got, cmd+" "+string(args))
		return nil, ""
	})
	if err := HotplugShare(t.Context(), q, Share{Tag: "bind1", Socket: "/run/bcvk/share1.sock"}, HotplugPort(1)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`chardev-add {"backend":{"data":{"addr":{"data":{"path":"/run/bcvk/share1.sock"},"type":"unix"},"server":false},"type":"socket"},"id":"bind1"}`,
		`device_add {"bus":"hp1","chardev":"bind1","driver":"vhost-user-fs-pci","id":"dev-bind1","queue-size":1024,"tag":"bind1"}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestHotplugShareRefused(t *testing.T) {
	_, q := serve(t, func(_ *qmptest.Server, cmd string, _ json.RawMessage) (any, string) {
		if cmd == "device_add" {
			return nil, "Bus 'hp0' not found"
		}
		return nil, ""
	})
	err := HotplugShare(t.Context(), q, Share{Tag: "bind0", Socket: "/s"}, HotplugPort(0))
	if err == nil || !strings.Contains(err.Error(), "adding the virtiofs device bind0: QMP device_add: Bus 'hp0' not found") {
		t.Fatalf("%v", err)
	}
}

// virtiofsd's socket file exists a moment before it listens: chardev-add is
// tried again while QEMU says "Connection refused".
func TestHotplugShareWaitsForTheSocket(t *testing.T) {
	refusals, adds := 2, 0
	_, q := serve(t, func(_ *qmptest.Server, cmd string, _ json.RawMessage) (any, string) {
		switch cmd {
		case "chardev-add":
			if refusals > 0 {
				refusals--
				return nil, "Failed to add chardev 'bind0': Failed to connect to '/s': Connection refused"
			}
		case "device_add":
			adds++
		}
		return nil, ""
	})
	if err := HotplugShare(t.Context(), q, Share{Tag: "bind0", Socket: "/s"}, HotplugPort(0)); err != nil || refusals != 0 || adds != 1 {
		t.Fatalf("%v: %d refusals left, %d device_add", err, refusals, adds)
	}
}

func TestHostfwdCommand(t *testing.T) {
	c := HostfwdCommand(Forward{ContainerPort: 30001, GuestPort: 8000})
	if a, _ := c.Arguments.(map[string]any); c.Execute != "human-monitor-command" || a["command-line"] != "hostfwd_add net0 tcp::30001-:8000" {
		t.Errorf("got %+v", c)
	}
}
