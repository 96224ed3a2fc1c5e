package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/spf13/cobra"
)

// versionTemplate is `bcvk --version`: bcvk's version on the first line,
// then the runner image that --runner-image or BCVK_RUNNER_IMAGE chooses,
// with its image ID.
const versionTemplate = `{{printf "%s version %s" .DisplayName .Version}}
{{bcvkRunnerLine .}}
`

// Cobra's templates take functions only from its one global table; this
// one keeps no state (it reads the command's flags).
func init() { cobra.AddTemplateFunc("bcvkRunnerLine", runnerLine) }

// runnerQueryTimeout bounds the podman call of --version, which must stay
// fast and work without podman.
const runnerQueryTimeout = 3 * time.Second

func runnerLine(c *cobra.Command) string {
	image := version.RunnerImage()
	if f := c.Flag("runner-image"); f != nil {
		image = f.Value.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), runnerQueryTimeout)
	defer cancel()
	id, missing := imageID(ctx, image)
	return version.RunnerLine(image, id, missing)
}

// imageID is image's ID in podman's local storage, or else why there is
// none: empty when podman answered that it does not have it.
func imageID(ctx context.Context, image string) (id, missing string) {
	pc, err := podman.New()
	if err != nil {
		return "", "podman is not installed"
	}
	img, err := pc.InspectImage(ctx, image)
	switch {
	case errors.Is(err, podman.ErrNoImage):
		return "", ""
	case ctx.Err() != nil:
		return "", fmt.Sprintf("podman did not answer within %s", runnerQueryTimeout)
	case err != nil:
		return "", strings.SplitN(strings.TrimSpace(err.Error()), "\n", 2)[0]
	}
	return img.ID, ""
}
