package spec

import (
	"fmt"
	"strings"
)

// SSH transports: how bcvk reaches the guest's sshd.
const (
	// TransportAuto lets bcvk-inner choose: vsock where the image can serve
	// SSH there (ChooseSSHTransport), else TCP.
	TransportAuto = "auto"
	// TransportVsock is sshd on vsock port 22, which systemd 256 and later
	// starts by itself in a VM (systemd-ssh-generator).
	TransportVsock = "vsock"
	// TransportTCP is the guest's port 22 through QEMU's user network.
	TransportTCP = "tcp"
)

// Guest networks.
const (
	// NetworkUser is QEMU's user network (the default): outbound access and
	// the TCP transport.
	NetworkUser = "user"
	// NetworkNone gives the guest no network device at all; SSH, commands
	// and binds go over vsock and virtiofs.
	NetworkNone = "none"
)

// Names in StateDir and ports of the vsock path.
const (
	// SSHTransportFile holds the transport bcvk-inner chose ("vsock" or
	// "tcp"), for ps and the host's ssh.
	SSHTransportFile = "ssh-transport"
	// NotifyPort is the host port the guest's systemd sends sd_notify
	// messages to (vmm.notify_socket=vsock-stream:2:PORT).
	NotifyPort = 8712
	// GuestInitPort is the host port bcvk's guest init reports its steps to.
	GuestInitPort = 8713
	// JournalPort is the host port the guest's journald forwards its
	// journal to (the credential journal.forward_to_socket=vsock:2:PORT).
	JournalPort = 8714
	// MinSystemdForJournal is the first systemd whose journald forwards
	// to a socket.
	MinSystemdForJournal = 256
	// GuestVsockSSHPort is the vsock port of sshd in the guest.
	GuestVsockSSHPort = 22
	// MinSystemdForVsockSSH is the first systemd with systemd-ssh-generator.
	MinSystemdForVsockSSH = 256
)

func validateTransport(s *Spec) []error {
	var errs []error
	switch s.SSHTransport {
	case "", TransportAuto, TransportVsock, TransportTCP:
	default:
		errs = append(errs, fmt.Errorf("SSH transport %q is not known: use auto, vsock or tcp", s.SSHTransport))
	}
	switch s.Network {
	case "", NetworkUser:
	case NetworkNone:
		if s.SSHTransport == TransportTCP {
			errs = append(errs, fmt.Errorf("--network none leaves no network for SSH over TCP: use --ssh-transport vsock (or auto)"))
		}
	default:
		errs = append(errs, fmt.Errorf("network %q is not known: use user or none", s.Network))
	}
	return errs
}

// SSHAutoDisabled says whether kernel arguments turn systemd's SSH
// generator off (systemd.ssh_auto=0 and its spellings; the last one wins).
func SSHAutoDisabled(kargs []string) bool {
	off := false
	for _, a := range kargs {
		v, ok := strings.CutPrefix(a, "systemd.ssh_auto=")
		if !ok {
			continue
		}
		switch strings.ToLower(v) {
		case "0", "no", "false", "off", "n":
			off = true
		default:
			off = false
		}
	}
	return off
}

// VsockSupport is what the image offers for SSH over vsock.
type VsockSupport struct {
	SystemdVersion int  // 0 when unknown
	Generator      bool // systemd-ssh-generator is there
	SSHD           bool // an sshd binary is there
	Modules        bool // the kernel has the virtio vsock transport
}

// ChooseSSHTransport decides the transport and says why, in words for the
// user. asked is the user's choice (auto when empty); kargs are the final
// kernel arguments.
func ChooseSSHTransport(asked string, v VsockSupport, kargs []string) (string, string) {
	if asked == TransportTCP {
		return TransportTCP, "asked for (--ssh-transport tcp)"
	}
	var lacks string
	switch {
	case v.SystemdVersion == 0:
		lacks = "the image's systemd version is unknown (no libsystemd-shared-NNN.so)"
	case v.SystemdVersion < MinSystemdForVsockSSH:
		lacks = fmt.Sprintf("the image's systemd %d is older than %d (no systemd-ssh-generator)", v.SystemdVersion, MinSystemdForVsockSSH)
	case !v.Generator:
		lacks = "the image has no systemd-ssh-generator"
	case !v.SSHD:
		lacks = "the image has no sshd"
	case !v.Modules:
		lacks = "the image's kernel lacks the virtio vsock transport (vmw_vsock_virtio_transport)"
	case SSHAutoDisabled(kargs):
		lacks = "the kernel arguments turn systemd's SSH generator off (systemd.ssh_auto)"
	}
	if lacks == "" {
		if asked == TransportVsock {
			return TransportVsock, "asked for (--ssh-transport vsock)"
		}
		return TransportVsock, fmt.Sprintf("the image's systemd %d serves SSH on vsock", v.SystemdVersion)
	}
	if asked == TransportVsock {
		return "", lacks
	}
	return TransportTCP, lacks
}
