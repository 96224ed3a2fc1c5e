// Command bcvk-inner runs in the runner container as PID 1 and supervises
// one VM. Copied into the VM's initramfs as /init, it is the guest's first
// init instead (package guestinit).
package main

import (
	"context"
	"os"

	"github.com/bcvk/bcvk/pkg/inner/guestinit"
	"github.com/bcvk/bcvk/pkg/inner/proxy"
	"github.com/bcvk/bcvk/pkg/inner/supervisor"
	"github.com/bcvk/bcvk/pkg/spec"
)

func main() {
	if os.Args[0] == "/init" {
		guestinit.Run()
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "initramfs" {
		// bcvk-inner initramfs IMAGE-ROOT OUT: write the boot initramfs
		// and print the kernel path (used by hack/bench.sh).
		if err := supervisor.WriteInitramfs(os.Args[2], os.Args[3]); err != nil {
			os.Stderr.WriteString("bcvk-inner: " + err.Error() + "\n")
			os.Exit(1)
		}
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "cmdline" {
		// bcvk-inner cmdline [RUNNER-FLAGS] [--image-root DIR] [--run-dir DIR]
		// [--ssh-key FILE]: print the virtiofsd and QEMU command lines, one
		// a line as ROLE<TAB>SOCKET<TAB>ARGV... (used by hack/bench.sh).
		if err := supervisor.WriteCommandLines(os.Args[2:], supervisor.DefaultOptions(), os.Stdout); err != nil {
			os.Stderr.WriteString("bcvk-inner cmdline: " + err.Error() + "\n")
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "proxy" {
		// bcvk-inner proxy ssh: an ssh ProxyCommand to the guest's sshd over
		// the VM's transport (bcvk's own ssh, bcvk ephemeral ssh-config);
		// bcvk-inner proxy HOST:PORT: to a TCP address in the container.
		t := proxy.Target{Transport: spec.TransportTCP, TCPAddr: os.Args[2]}
		if os.Args[2] == "ssh" {
			var err error
			if t, err = proxy.ReadTarget(spec.RunDir); err != nil {
				os.Stderr.WriteString("bcvk-inner proxy: " + err.Error() + "\n")
				os.Exit(1)
			}
		}
		if err := proxy.Run(context.Background(), t, os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString("bcvk-inner proxy: " + err.Error() + "\n")
			os.Exit(1)
		}
		return
	}
	os.Exit(supervisor.Main(os.Args[1:], supervisor.DefaultOptions()))
}
