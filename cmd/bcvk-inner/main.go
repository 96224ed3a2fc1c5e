// Command bcvk-inner runs in the runner container as PID 1 and supervises
// one VM. Copied into the VM's initramfs as /init, it is the guest's first
// init instead (package guestinit).
package main

import (
	"os"

	"github.com/bcvk/bcvk/pkg/inner/guestinit"
	"github.com/bcvk/bcvk/pkg/inner/supervisor"
)

func main() {
	if os.Args[0] == "/init" {
		guestinit.Run()
		return
	}
	os.Exit(supervisor.Main(os.Args[1:], supervisor.DefaultOptions()))
}
