// Package units formats sizes for people: one place, so that a size reads
// the same in every message.
package units

import "fmt"

// BytesSize is a size in the largest binary unit that reads well: GiB with
// one decimal, whole MiB, or bytes ("1.5 GiB", "384 MiB", "512 bytes").
func BytesSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// HumanSize is a size in decimal units with three significant digits, as
// podman and docker print image sizes ("512 B", "1.5 GB", "380 MB").
func HumanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.3g %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
