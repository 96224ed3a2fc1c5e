package units

import "testing"

func TestBytesSize(t *testing.T) {
	for n, want := range map[int64]string{
		512: "512 bytes", 1 << 20: "1 MiB", 384 << 20: "384 MiB", 1 << 30: "1.0 GiB", 3 << 29: "1.5 GiB", 20 << 30: "20.0 GiB",
	} {
		if got := BytesSize(n); got != want {
			t.Errorf("BytesSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 999: "999 B", 1000: "1 kB", 1500: "1.5 kB", 380_000_000: "380 MB", 1_234_567_890: "1.23 GB",
	} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
