package supervisor

import "time"

// Timing holds the supervisor's named waits.
type Timing struct {
	// A silent KVM guest is judged by its instruction pointers, sampled
	// KVMSamples times this far apart.
	KVMSamples        int
	KVMSampleInterval time.Duration
	QMPTimeout        time.Duration
	// PowerdownRepeat: a power-button press is lost while the guest has
	// nobody listening for it yet, so it is pressed again this often.
	PowerdownRepeat time.Duration
	// FDWatch is how often virtiofsd's descriptors are counted.
	FDWatch time.Duration
	// VsockSilence is how long a vsock device may leave every dial
	// unanswered before it is taken for dead (see vsockWatch); zero never.
	VsockSilence time.Duration
}

// DefaultTiming is what the runner uses.
func DefaultTiming() Timing {
	return Timing{KVMSamples: 5, KVMSampleInterval: 250 * time.Millisecond, QMPTimeout: 2 * time.Second, PowerdownRepeat: 3 * time.Second, FDWatch: fdWatchInterval,
		VsockSilence: defaultVsockSilence}
}
