// Package version holds bcvk's version, set at build time.
package version

import "fmt"

// Version is set with -ldflags "-X github.com/bcvk/bcvk/pkg/version.Version=...".
var Version = "dev"

// RunnerImage is the runner image that matches this build.
func RunnerImage() string { return "localhost/bcvk-runner:" + Version }

// RunnerLine is the line of `bcvk --version` that names the runner image:
// with its image ID when podman has it in local storage (id), otherwise
// "not present" and why (missing: podman's answer or its absence; empty
// when podman simply does not have it).
func RunnerLine(image, id, missing string) string {
	switch {
	case id != "":
		return fmt.Sprintf("runner image %s, ID %s", image, id)
	case missing != "":
		return fmt.Sprintf("runner image %s, not present (%s)", image, missing)
	default:
		return fmt.Sprintf("runner image %s, not present", image)
	}
}
