package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// readCloudInit reads and checks the --cloud-init seed directory.
func readCloudInit(dir string, warm bool) (*spec.CloudInit, error) {
	if warm {
		return nil, usageError{errors.New("--warm cannot be combined with --cloud-init: a saved VM cannot take a new disk, and its cloud-init has already run")}
	}
	seed, ignored, err := spec.ReadCloudInitDir(dir)
	if err != nil {
		return nil, usageError{fmt.Errorf("--cloud-init: %w", err)}
	}
	if len(ignored) > 0 {
		logrus.Debugf("--cloud-init %s: ignoring %s (bcvk passes on user-data, meta-data and network-config only)", dir, strings.Join(ignored, ", "))
	}
	return seed, nil
}
