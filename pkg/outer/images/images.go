// Package images lists the bootc images in local container storage.
package images

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
)

// Image is one tag of a bootc image (an untagged image has one entry with
// repository and tag "<none>").
type Image struct {
	Repository string            `json:"repository"`
	Tag        string            `json:"tag"`
	ID         string            `json:"id"`
	Digest     string            `json:"digest,omitempty"`
	Created    time.Time         `json:"created"`
	Size       int64             `json:"size"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// summary is the part of `podman images --format json` we read.
type summary struct {
	ID      string            `json:"Id"`
	Names   []string          `json:"Names"`
	Digest  string            `json:"Digest"`
	Created int64             `json:"Created"`
	Size    int64             `json:"Size"`
	Labels  map[string]string `json:"Labels"`
}

// List returns local images labelled containers.bootc=1, newest first.
func List(ctx context.Context, pc *podman.Client) ([]Image, error) {
	out, err := pc.Output(ctx, "images", "--format", "json", "--filter", "label="+spec.BootcLabel+"=1")
	if err != nil {
		return nil, err
	}
	return parse(out)
}

func parse(out []byte) ([]Image, error) {
	var ss []summary
	if err := json.Unmarshal(out, &ss); err != nil {
		return nil, fmt.Errorf("reading podman images output: %w", err)
	}
	var imgs []Image
	for _, s := range ss {
		base := Image{ID: strings.TrimPrefix(s.ID, "sha256:"), Digest: s.Digest,
			Created: time.Unix(s.Created, 0).UTC(), Size: s.Size, Labels: s.Labels}
		if len(s.Names) == 0 {
			im := base
			im.Repository, im.Tag = "<none>", "<none>"
			imgs = append(imgs, im)
		}
		for _, n := range s.Names {
			im := base
			im.Repository, im.Tag = splitName(n)
			imgs = append(imgs, im)
		}
	}
	sort.SliceStable(imgs, func(i, j int) bool {
		if !imgs[i].Created.Equal(imgs[j].Created) {
			return imgs[i].Created.After(imgs[j].Created)
		}
		return imgs[i].Repository+":"+imgs[i].Tag < imgs[j].Repository+":"+imgs[j].Tag
	})
	return imgs, nil
}

// splitName splits "host:5000/repo:tag" into repository and tag; a digest
// reference has tag "<none>".
func splitName(n string) (string, string) {
	if i := strings.LastIndex(n, "@"); i >= 0 {
		return n[:i], "<none>"
	}
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, "latest"
}
