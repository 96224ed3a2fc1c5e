package storageconf

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]any
		err      string
	}{
		{"no file (Debian)", "", map[string]any{"storage": map[string]any{
			"driver": "overlay", "runroot": "/run/containers/storage", "graphroot": "/var/lib/containers/storage",
			"options": map[string]any{"additionalimagestores": []any{"/run/s"}}}}, ""},
		{"Fedora's, with a store already", `
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
[storage.options]
additionalimagestores = [
"/usr/lib/containers/storage",
]
pull_options = {enable_partial_images = "true"}
[storage.options.overlay]
mountopt = "nodev,metacopy=on"
`, map[string]any{"storage": map[string]any{
			"driver": "overlay", "runroot": "/run/containers/storage", "graphroot": "/var/lib/containers/storage",
			"options": map[string]any{
				"additionalimagestores": []any{"/usr/lib/containers/storage", "/run/s"},
				"pull_options":          map[string]any{"enable_partial_images": "true"},
				"overlay":               map[string]any{"mountopt": "nodev,metacopy=on"},
			}}}, ""},
		{"the image's graphroot and driver", "[storage]\ndriver = \"vfs\"\ngraphroot = \"/srv/c\"\n", map[string]any{"storage": map[string]any{
			"driver": "overlay", "runroot": "/run/containers/storage", "graphroot": "/srv/c",
			"options": map[string]any{"additionalimagestores": []any{"/run/s"}}}}, ""},
		{"added once", "[storage.options]\nadditionalimagestores = [\"/run/s\"]\n", map[string]any{"storage": map[string]any{
			"driver": "overlay", "runroot": "/run/containers/storage", "graphroot": "/var/lib/containers/storage",
			"options": map[string]any{"additionalimagestores": []any{"/run/s"}}}}, ""},
		{"not a table", "storage = 1\n", nil, "storage is int64"},
		{"not a list", "[storage.options]\nadditionalimagestores = \"/x\"\n", nil, "not a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := map[string]any{}
			if _, err := toml.Decode(tc.in, &conf); err != nil {
				t.Fatal(err)
			}
			got, err := Merge(conf, "/run/s", "overlay")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want an error with %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// What is written reads back the same.
			var b bytes.Buffer
			if err := toml.NewEncoder(&b).Encode(got); err != nil {
				t.Fatal(err)
			}
			back := map[string]any{}
			if _, err := toml.Decode(b.String(), &back); err != nil {
				t.Fatalf("%v in\n%s", err, b.String())
			}
			if !reflect.DeepEqual(back, tc.want) {
				t.Fatalf("got\n%#v\nwant\n%#v\nfile:\n%s", back, tc.want, b.String())
			}
		})
	}
}
