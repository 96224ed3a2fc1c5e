package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/bcvk/bcvk/pkg/credential"
	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/guestinit"
	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/proxy"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/inner/vsock"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Names in the run directory of the userspace vsock backend.
const (
	vsockBackendSocket = "vsock.sock" // QEMU's vhost-user socket
	vsockUDS           = "vm.vsock"   // host end: CONNECT here, guest ports at vm.vsock_PORT
	cidAttempts        = 32
)

// transportPlan is how SSH and the guest's reports reach bcvk-inner.
type transportPlan struct {
	transport string
	why       string
	target    proxy.Target
	// helper is the userspace vsock backend, when used.
	helper *machine.Helper
	// vhost is the open /dev/vhost-vsock holding the guest's CID, which
	// QEMU inherits.
	vhost *os.File
	// reportPort is the host vsock port the guest init reports to.
	reportPort uint32
}

// planTransport decides the SSH transport (the user's choice, else what
// the image supports), sets up its device on cfg and records it for the
// proxy and for ps.
func (s *supervisor) planTransport(ctx context.Context, cfg *qemu.Config, k kernel.Kernel, restoring string) error {
	cfg.NoNetwork = s.sp.Network == spec.NetworkNone
	var t, why string
	if s.sp.Warm == spec.WarmRestore {
		// The saved VM's devices decide.
		t, why = restoring, "the saved VM used it"
		if t == "" {
			t = spec.TransportTCP
		}
	} else {
		v, err := probeVsock(s.o.ImageRoot, k)
		if err != nil {
			return fmt.Errorf("reading what the image offers for SSH over vsock: %w", err)
		}
		t, why = spec.ChooseSSHTransport(s.sp.SSHTransport, v, cfg.KernelArgs)
		logrus.Debugf("image: systemd %d, ssh generator %v, sshd %v, vsock modules %v", v.SystemdVersion, v.Generator, v.SSHD, v.Modules)
	}
	switch {
	case t == "":
		return fmt.Errorf("--ssh-transport vsock: %s", why)
	case t == spec.TransportTCP && cfg.NoNetwork:
		return fmt.Errorf("--network none needs SSH over vsock, but %s", why)
	}
	if t == spec.TransportVsock && s.sp.Warm == spec.WarmSave && !exists(s.o.VhostVsockDevice) {
		// QEMU (10.0) refuses to save a VM with a vhost-user-vsock device.
		why = "QEMU cannot save a VM with the userspace vsock device, and a warm start saves it"
		if s.sp.SSHTransport == spec.TransportVsock || cfg.NoNetwork {
			return fmt.Errorf("--warm needs SSH over TCP on this host: %s (drop --ssh-transport vsock and --network none, or --warm)", why)
		}
		t = spec.TransportTCP
	}
	tcp := proxy.Target{Transport: spec.TransportTCP, TCPAddr: fmt.Sprintf("127.0.0.1:%d", spec.GuestSSHPort)}
	p := transportPlan{transport: t, why: why, target: tcp}
	if t == spec.TransportVsock {
		if err := s.planVsock(ctx, cfg, &p); err != nil {
			if s.sp.SSHTransport == spec.TransportVsock || cfg.NoNetwork || s.sp.Warm == spec.WarmRestore {
				return err
			}
			p = transportPlan{transport: spec.TransportTCP, why: err.Error(), target: tcp}
		}
	}
	s.tp = p
	if p.transport == spec.TransportTCP {
		s.noJournal("it comes over vsock, and this VM has none: SSH goes over TCP, " + p.why)
	}
	msg := fmt.Sprintf("SSH goes over %s: %s", p.transport, p.why)
	if p.transport == spec.TransportTCP && s.sp.SSHTransport != spec.TransportTCP && s.sp.Warm == "" {
		// Falling back by itself is news: one line at the default level.
		msg = fmt.Sprintf("SSH goes over TCP, not vsock: %s", p.why)
		logrus.Info(msg)
		s.ev.Warn(events.CodeTransport, msg)
	} else {
		logrus.Debug(msg)
		s.ev.Emit(events.PhaseInfo, msg)
	}
	if err := proxy.WriteTarget(s.o.RunDir, p.target); err != nil {
		return fmt.Errorf("recording the SSH transport: %w", err)
	}
	s.recordTransport(p.transport)
	return nil
}

// planVsock sets up the vsock device: the kernel's vhost-vsock where the
// container has /dev/vhost-vsock, else the userspace backend. The guest's
// systemd reports to a listener that lives as long as bcvk-inner.
func (s *supervisor) planVsock(ctx context.Context, cfg *qemu.Config, p *transportPlan) error {
	p.target = proxy.Target{Transport: spec.TransportVsock, VsockPort: spec.GuestVsockSSHPort}
	var (
		l, jl       net.Listener
		port, jport uint32
	)
	if exists(s.o.VhostVsockDevice) {
		cid, f, err := vsock.AllocateCID(ctx, vsock.VhostDevice{Path: s.o.VhostVsockDevice}, nil, cidAttempts)
		if err != nil {
			return fmt.Errorf("allocating a vsock CID on %s: %w", s.o.VhostVsockDevice, err)
		}
		// Host vsock ports are host-wide: a free one at random, and only
		// our guest may talk to it.
		kl, kp, err := vsock.ListenRandomPort(vsock.KernelListen, nil, cidAttempts)
		if err != nil {
			f.Close()
			return fmt.Errorf("listening for the guest's systemd on vsock: %w", err)
		}
		l, port = vsock.FromCID(kl, cid), kp
		rl, rp, err := vsock.ListenRandomPort(vsock.KernelListen, nil, cidAttempts)
		if err != nil {
			f.Close()
			l.Close()
			return fmt.Errorf("listening for the guest init on vsock: %w", err)
		}
		s.serveInitReports(ctx, vsock.FromCID(rl, cid))
		p.reportPort = rp
		if s.sp.Journal != "" {
			if jl, jport, err = vsock.ListenRandomPort(vsock.KernelListen, nil, cidAttempts); err != nil {
				f.Close()
				l.Close()
				return fmt.Errorf("listening for the guest's journal on vsock: %w", err)
			}
			jl = vsock.FromCID(jl, cid)
		}
		// QEMU inherits it as its first extra descriptor (fd 3).
		p.vhost = f
		cfg.Vsock = &qemu.Vsock{CID: cid, VhostFD: 3}
		p.target.VsockCID = cid
		s.dialer = vsock.KernelDialer{CID: cid}
	} else {
		bin, err := exec.LookPath(s.o.VhostDeviceVsock)
		if err != nil {
			return fmt.Errorf("the runner image has no %s (the userspace vsock backend) and the container no %s", s.o.VhostDeviceVsock, s.o.VhostVsockDevice)
		}
		sock := filepath.Join(s.o.RunDir, vsockBackendSocket)
		uds := filepath.Join(s.o.RunDir, vsockUDS)
		if l, err = vsock.UnixListen(uds, spec.NotifyPort); err != nil {
			return fmt.Errorf("listening for the guest's systemd: %w", err)
		}
		port = spec.NotifyPort
		rl, err := vsock.UnixListen(uds, spec.GuestInitPort)
		if err != nil {
			l.Close()
			return fmt.Errorf("listening for the guest init: %w", err)
		}
		s.serveInitReports(ctx, rl)
		p.reportPort = spec.GuestInitPort
		if s.sp.Journal != "" {
			if jl, err = vsock.UnixListen(uds, spec.JournalPort); err != nil {
				l.Close()
				return fmt.Errorf("listening for the guest's journal: %w", err)
			}
			jport = spec.JournalPort
		}
		p.helper = &machine.Helper{Name: "vhost-device-vsock", Socket: sock,
			Argv: append([]string{bin}, vsock.BackendArgs(vsock.BackendConfig{GuestCID: vsock.GuestCID, Socket: sock, UDSPath: uds})...)}
		cfg.Vsock = &qemu.Vsock{BackendSocket: sock}
		p.target.VsockSocket = uds
		s.dialer = vsock.UnixDialer{Path: uds}
	}
	closeAll := func() {
		l.Close()
		if jl != nil {
			jl.Close()
		}
	}
	v, err := credential.SMBIOS(vsock.NotifyCredential, []byte(vsock.NotifySocket(port)))
	if err != nil {
		closeAll()
		return err
	}
	cfg.SMBIOSCredentials = append(cfg.SMBIOSCredentials, v)
	if jl != nil {
		// Only when asked (--journal): journald forwards synchronously, so
		// a forward that stalls on the vsock path stalls the guest's
		// logging, and with it the boot.
		jv, err := credential.SMBIOS(journalCredential, []byte(journalSocket(jport)))
		if err != nil {
			closeAll()
			return err
		}
		cfg.SMBIOSCredentials = append(cfg.SMBIOSCredentials, jv)
		s.serveJournal(ctx, jl)
	}
	s.serveNotify(ctx, l)
	return nil
}

// serveNotify follows the guest's systemd until ctx ends.
func (s *supervisor) serveNotify(ctx context.Context, l net.Listener) {
	ch := make(chan vsock.Notify, 16)
	srv := &vsock.NotifyServer{Timeout: vsock.DefaultNotifyTimeout, MaxConns: vsock.DefaultNotifyMaxConns, Log: logrus.StandardLogger()}
	go func() {
		if err := srv.Serve(ctx, l, ch); err != nil {
			logrus.Debugf("the listener for the guest's systemd ended: %v", err)
		}
	}()
	go func() {
		for {
			select {
			case n := <-ch:
				s.onNotify(n)
			case <-ctx.Done():
				return
			}
		}
	}()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Bounds on what the guest init may send: it reports three short lines
// per boot (a restart boots again).
const (
	maxReportLine  = 256
	maxReportLines = 16
	reportWait     = 5 * time.Minute
)

// serveInitReports turns the guest init's lines into events until ctx
// ends; the handover line is the step "Starting systemd and sshd" (the
// console says it too, and whichever comes first counts).
func (s *supervisor) serveInitReports(ctx context.Context, l net.Listener) {
	context.AfterFunc(ctx, func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(reportWait))
				r := bufio.NewReaderSize(io.LimitReader(c, maxReportLine*maxReportLines), maxReportLine)
				for range maxReportLines {
					line, err := r.ReadSlice('\n')
					if err != nil {
						return
					}
					msg := cleanGuestText(strings.TrimSuffix(string(line), "\n"), maxReportLine)
					s.ev.Emit(events.PhaseInfo, "guest init: "+msg)
					if strings.HasPrefix(msg, guestinit.ReportHandover) {
						s.reportHandover()
					}
				}
			}()
		}
	}()
}

// reportHandover emits the systemd step once per boot, from the console or
// the guest init's report.
func (s *supervisor) reportHandover() {
	if s.handoverReported.CompareAndSwap(false, true) {
		s.ev.Emit(events.PhaseSystemd, "the image's init has taken over")
	}
}

// cleanGuestText keeps the printable characters of what the guest said,
// at most max bytes of them.
func cleanGuestText(v string, max int) string {
	v = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, v)
	if len(v) > max {
		v = v[:max] + "..."
	}
	return v
}

// recordTransport writes the transport to the state directory for ps.
func (s *supervisor) recordTransport(t string) {
	f, err := os.OpenFile(filepath.Join(s.o.StateDir, spec.SSHTransportFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return // run by hand: no state directory
	}
	_, _ = f.WriteString(t + "\n")
	f.Close()
}

// maxProgress caps a progress line from the guest's systemd.
const maxProgress = 100

// onNotify turns a message of the guest's systemd into events. Its words
// are the guest's: printable characters only, bounded.
func (s *supervisor) onNotify(n vsock.Notify) {
	clean := func(v string) string { return cleanGuestText(v, maxProgress) }
	switch {
	case n.Ready:
		s.ev.Emit(events.PhaseProgress, "systemd: the system is up (READY=1)")
	case n.UnitActive != "":
		s.ev.Emit(events.PhaseProgress, "systemd: "+clean(n.UnitActive)+" reached")
	case n.Status != "":
		s.ev.Emit(events.PhaseProgress, "systemd: "+clean(n.Status))
	case n.Shutdown != "":
		s.ev.Emit(events.PhaseInfo, "the guest's systemd is shutting down: "+clean(n.Shutdown))
	case n.ExitStatus != nil:
		s.ev.Emit(events.PhaseInfo, fmt.Sprintf("the guest's systemd reports exit status %d", *n.ExitStatus))
	}
}
