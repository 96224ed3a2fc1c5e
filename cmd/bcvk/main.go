// Command bcvk is the host side of the bootc virtualization kit.
package main

import (
	"os"

	"github.com/bcvk/bcvk/pkg/outer/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
