package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// On q35 nothing can be plugged into the root bus (pcie.0) while the VM
// runs: a device added later needs an empty PCIe root port. A saved warm VM
// has them from its boot (the restoring QEMU must have the same devices),
// and its shares are added into them after the restore.

// hotplugSlot is the PCI slot of the ports, one function each: given on the
// command line before any device that QEMU places itself, so none takes it.
const hotplugSlot = 0x1c

// MaxHotplugPorts is what one slot holds (functions 0-7).
const MaxHotplugPorts = 8

// HotplugPort is the id (and bus name) of the i-th empty root port.
func HotplugPort(i int) string { return fmt.Sprintf("hp%d", i) }

func hotplugPortArgs(n int) []string {
	var a []string
	for i := 0; i < n && i < MaxHotplugPorts; i++ {
		dev := fmt.Sprintf("pcie-root-port,id=%s,chassis=%d,bus=pcie.0,addr=0x%x.%d", HotplugPort(i), i+1, hotplugSlot, i)
		if i == 0 && n > 1 {
			dev += ",multifunction=on"
		}
		a = append(a, "-device", dev)
	}
	return a
}

// HotplugShareCommands are the QMP commands that add share sh as a virtiofs
// device in root port port: its vhost-user socket, then the device.
func HotplugShareCommands(sh Share, port string) []Command {
	return []Command{
		{Execute: "chardev-add", Arguments: map[string]any{
			"id": sh.Tag,
			"backend": map[string]any{"type": "socket", "data": map[string]any{
				"addr":   map[string]any{"type": "unix", "data": map[string]any{"path": sh.Socket}},
				"server": false,
			}},
		}},
		{Execute: "device_add", Arguments: map[string]any{
			"driver": "vhost-user-fs-pci", "id": "dev-" + sh.Tag, "bus": port,
			"chardev": sh.Tag, "tag": sh.Tag, "queue-size": 1024,
		}},
	}
}

// chardevRetry is how often chardev-add is tried again while the socket
// refuses connections: virtiofsd creates its socket file a moment before it
// listens on it (QEMU said "Connection refused" here, under load). Probing
// the socket ourselves is no way round: virtiofsd serves the first
// connection only.
const chardevRetry = 20 * time.Millisecond

// HotplugShare adds share sh to the running VM in root port port. The guest
// then sees a new virtiofs device with sh's tag.
func HotplugShare(ctx context.Context, q *QMP, sh Share, port string) error {
	for _, c := range HotplugShareCommands(sh, port) {
		for {
			_, err := q.Execute(ctx, c.Execute, c.Arguments)
			if err == nil {
				break
			}
			if c.Execute != "chardev-add" || !strings.Contains(err.Error(), "Connection refused") {
				return fmt.Errorf("adding the virtiofs device %s: %w", sh.Tag, err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("adding the virtiofs device %s: %w (%w)", sh.Tag, err, ctx.Err())
			case <-time.After(chardevRetry):
			}
		}
	}
	return nil
}

// HostfwdCommand is the QMP command that publishes a port on a running VM's
// user network (net0), as -netdev's hostfwd does at start: a warm VM's
// published ports are added after the restore, so that one saved VM serves
// any ports. It goes through HMP: QMP has no command of its own for it.
func HostfwdCommand(f Forward) Command {
	return Command{Execute: "human-monitor-command", Arguments: map[string]any{
		"command-line": fmt.Sprintf("hostfwd_add net0 tcp::%d-:%d", f.ContainerPort, f.GuestPort),
	}}
}

// AddForward publishes f on the running VM.
func AddForward(ctx context.Context, q *QMP, f Forward) error {
	c := HostfwdCommand(f)
	out, err := q.Execute(ctx, c.Execute, c.Arguments)
	if err != nil {
		return fmt.Errorf("publishing the guest's port %d: %w", f.GuestPort, err)
	}
	// HMP reports a failure as its output, not as a QMP error.
	var msg string
	if json.Unmarshal(out, &msg) == nil && strings.TrimSpace(msg) != "" {
		return fmt.Errorf("publishing the guest's port %d: %s", f.GuestPort, strings.TrimSpace(msg))
	}
	return nil
}
