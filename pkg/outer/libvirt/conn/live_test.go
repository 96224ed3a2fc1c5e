package conn

import (
	"fmt"
	"os"
	"testing"
)

// TestLive talks to the real daemon of LIBVIRT_DEFAULT_URI (else
// qemu:///system) when BCVK_LIBVIRT_LIVE=1, directly and, for a local system
// daemon, through the in-process sshd. It only reads.
func TestLive(t *testing.T) {
	if os.Getenv("BCVK_LIBVIRT_LIVE") != "1" {
		t.Skip("set BCVK_LIBVIRT_LIVE=1 to talk to a running libvirtd")
	}
	u, err := DefaultURI("", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("direct", func(t *testing.T) { live(t, u, Options{}) })

	if u.Remote() || u.Mode != ModeSystem {
		return
	}
	sock, err := LocalSocket(u, os.Getenv, exists)
	if err != nil {
		t.Fatal(err)
	}
	x := newSSHFixture(t)
	su := mustParse(t, fmt.Sprintf("qemu+ssh://tester@%s/system?keyfile=%s&known_hosts=%s&socket=%s",
		x.srv.addr, x.key, x.knownHosts, sock))
	t.Run("ssh", func(t *testing.T) { live(t, su, x.opts()) })
}

func live(t *testing.T, u URI, opts Options) {
	c, err := Open(t.Context(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.L().ConnectGetLibVersion()
	if err != nil {
		t.Fatal(Wrap("get libvirt version", err))
	}
	t.Logf("%s: libvirt %d.%d.%d", u, v/1000000, v/1000%1000, v%1000)
	_, err = c.L().DomainLookupByName("bcvk-no-such-domain")
	err = Wrap("look up domain bcvk-no-such-domain", err)
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	t.Log(err)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
