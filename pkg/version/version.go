// Package version holds bcvk's version, set at build time.
package version

// Version is set with -ldflags "-X github.com/bcvk/bcvk/pkg/version.Version=...".
var Version = "dev"

// RunnerImage is the runner image that matches this build.
func RunnerImage() string { return "localhost/bcvk-runner:" + Version }
