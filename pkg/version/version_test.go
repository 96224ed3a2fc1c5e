package version

import "testing"

func TestRunnerLine(t *testing.T) {
	const img = "localhost/bcvk-runner:0.1.0"
	id := "4afa44445bdf34734b9198f3095d19ea57a8d7561a43b400c54c00f562607e35"
	for _, tc := range []struct {
		id, missing, want string
	}{
		{id, "", "runner image " + img + ", ID " + id},
		{"", "", "runner image " + img + ", not present"},
		{"", "podman is not installed", "runner image " + img + ", not present (podman is not installed)"},
	} {
		if got := RunnerLine(img, tc.id, tc.missing); got != tc.want {
			t.Errorf("RunnerLine(%q, %q, %q) = %q, want %q", img, tc.id, tc.missing, got, tc.want)
		}
	}
}
