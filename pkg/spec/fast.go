package spec

// FastArg is one kernel argument of the opt-in fast mode, and what it gives
// up for speed.
type FastArg struct {
	Arg string
	Why string
}

// FastKernelArgs trade fidelity for boot time (`--fast`). They come after
// the user's --karg values are checked but before them on the command line,
// so a user's own value of the same option wins where the kernel or systemd
// takes the last one.
var FastKernelArgs = []FastArg{
	{"quiet", "fewer kernel messages on the emulated serial console"},
	{"systemd.show_status=0", "no unit status lines on the console"},
	{"mitigations=off", "no CPU vulnerability mitigations in the guest kernel"},
	{"systemd.condition_needs_update=0", "skip ldconfig and the other \"/usr was updated\" jobs that old image file times trigger"},
	{"systemd.condition_first_boot=0", "skip first-boot setup (an image with an empty machine-id boots as a first boot every time)"},
	{"systemd.mask=user@0.service", "no per-user systemd for root, so an SSH login is seconds faster (no systemctl --user)"},
	{"systemd.mask=systemd-journal-flush.service", "the journal stays in /run (the root is a tmpfs overlay anyway)"},
	{"systemd.mask=e2scrub_reap.service", "no ext4 scrub housekeeping"},
	{"systemd.mask=systemd-networkd-wait-online.service", "nothing waits for the network to be fully configured"},
}

// FastArgs returns just the arguments.
func FastArgs() []string {
	out := make([]string, len(FastKernelArgs))
	for i, f := range FastKernelArgs {
		out[i] = f.Arg
	}
	return out
}
