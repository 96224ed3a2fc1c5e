package podman

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fake is a podman that logs its arguments, one per line, and prints out.
func fake(t *testing.T, out string) (*Client, func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + log + "\nprintf '%s' '" + out + "'\n"
	if err := os.WriteFile(filepath.Join(dir, "podman"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return &Client{Binary: filepath.Join(dir, "podman")}, func() []string {
		b, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
}

// An image reference that begins with "-" reaches podman after "--", so
// podman cannot take it for an option.
func TestReferencesFollowDoubleDash(t *testing.T) {
	ctx := t.Context()
	const ref = "--authfile=/tmp/evil"
	for _, tc := range []struct {
		name string
		call func(c *Client) error
		want []string
	}{
		{"image inspect", func(c *Client) error { _, err := c.InspectImage(ctx, ref); return err },
			[]string{"image", "inspect", "--format", "json", "--", ref}},
		{"image exists", func(c *Client) error { _, err := c.ImageExists(ctx, ref); return err },
			[]string{"image", "exists", "--", ref}},
		{"pull", func(c *Client) error { return c.Pull(ctx, ref, true) },
			[]string{"pull", "--quiet", "--tls-verify=true", "--", ref}},
		{"rm", func(c *Client) error { return c.Remove(ctx, "-vm") },
			[]string{"rm", "--force", "--ignore", "--time", "0", "--", "-vm"}},
		{"stop", func(c *Client) error { return c.Stop(ctx, "-vm", 5) },
			[]string{"stop", "--ignore", "--time", "5", "--", "-vm"}},
	} {
		c, args := fake(t, `[{"Id":"x"}]`)
		if err := tc.call(c); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := args(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: podman %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRemote(t *testing.T) {
	t.Setenv("CONTAINER_HOST", "")
	t.Setenv("CONTAINER_CONNECTION", "")
	local, _ := fake(t, `{"host":{"serviceIsRemote":false}}`)
	remote, _ := fake(t, `{"host":{"serviceIsRemote":true}}`)
	broken, _ := fake(t, `not json`)
	if local.Remote(t.Context()) || !remote.Remote(t.Context()) || !broken.Remote(t.Context()) {
		t.Fatal("podman info's serviceIsRemote not followed, or a podman that cannot say counts as local")
	}
	t.Setenv("CONTAINER_HOST", "ssh://host/run/podman.sock")
	if !local.Remote(t.Context()) {
		t.Fatal("CONTAINER_HOST counts as local")
	}
}

// podman reads --mount with encoding/csv: every field comes back whole.
func TestMountArgRoundTrips(t *testing.T) {
	for _, src := range []string{"/srv/plain", "/a,b", `/a"b`, `/"q"`, "/a=b", "/a,ro=true", "/x\ny", " /lead", "/a\"\",,b"} {
		fields := []string{"type=bind", "source=" + src, "destination=/d", "ro=true"}
		m := MountArg(fields...)
		rec, err := csv.NewReader(strings.NewReader(m)).ReadAll()
		if err != nil || len(rec) != 1 || !slices.Equal(rec[0], fields) {
			t.Errorf("%q: %s read back as %q, %v", src, m, rec, err)
		}
	}
	if got := MountArg("type=bind", "source=/a,b", "destination=/d"); got != `type=bind,"source=/a,b",destination=/d` {
		t.Fatalf("got %s", got)
	}
}

func TestCheckMountPath(t *testing.T) {
	for _, p := range []string{"/a\nb", "/a\r\nb", "/a\tb", "/a\x7fb", ""} {
		if CheckMountPath("x", p) == nil {
			t.Errorf("%q accepted", p)
		}
	}
	for _, p := range []string{"/a,b", `/a"b`, "/a=b", "/ünï"} {
		if err := CheckMountPath("x", p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}
