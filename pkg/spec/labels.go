package spec

// Labels that bcvk puts on every container it creates, so that ps and rm
// find ours and nothing else.
const (
	LabelEphemeral = "bcvk.ephemeral" // "1" on ephemeral VM containers
	LabelVersion   = "bcvk.version"   // the bcvk version that made it
	LabelImage     = "bcvk.image"     // the bootc image reference
	LabelName      = "bcvk.name"      // the VM name
	LabelStateDir  = "bcvk.state-dir" // host directory with key, events and console
	LabelSSHUser   = "bcvk.ssh-user"  // the guest user for SSH, when not root
	LabelPublish   = "bcvk.publish"   // published ports, IP:HOST:GUEST/tcp,...
	// LabelOwner is "PID@BOOT-ID@START-TIME@PID-NAMESPACE" of the bcvk
	// process that removes the container when it ends (run-ssh, to-disk); a
	// container whose owner provably died was left by a killed bcvk, and the
	// next bcvk removes it.
	LabelOwner = "bcvk.owner"
	// LabelRunnerID is the runner image's ID. An image cannot carry its own
	// ID among its labels (the ID is a hash over them), so this label equal
	// to the container's image ID shows that bcvk set the labels, not the
	// image.
	LabelRunnerID = "bcvk.runner-id"
	// BootcLabel marks bootc images.
	BootcLabel = "containers.bootc"
)
