// Package sshclient builds the ssh command lines bcvk runs inside the runner
// container. ssh reaches the guest through ProxyCommand: bcvk-inner's proxy
// connects over whichever transport the VM uses (vsock or the TCP port that
// QEMU forwards), so the command line is the same for both.
package sshclient

import (
	"strconv"
	"strings"
)

// ConnectTimeoutSeconds is ssh's ConnectTimeout (see Options).
const ConnectTimeoutSeconds = 90

// ProxyCommand is the runner's ssh proxy to the guest's sshd.
const ProxyCommand = "/usr/bin/bcvk-inner proxy ssh"

// Host is the destination's host name: only a label, the proxy decides
// where the connection goes.
const Host = "bcvk-guest"

// Options are the fixed client options: the key is fresh per VM and the host
// key is new on every boot, so known_hosts is neither read nor written.
// Keepalives give up after two minutes of silence: a VM that ends closes the
// connection at once (its forward lives in QEMU), so they only catch a hung
// guest, and under TCG with five VMs on two cores a busy guest was seen
// silent for over 30 s (ssh then exits 255 without a word at LogLevel ERROR).
// ConnectTimeout bounds the wait for sshd's greeting (the proxy connects at
// once): over vsock systemd starts an sshd per connection, which took over
// 10 s with five VMs booting on two cores under TCG (ssh: "Connection timed
// out during banner exchange"); readiness was already proven by the probe.
func Options(keyPath, proxy string) []string {
	return []string{
		"-i", keyPath,
		"-o", "ProxyCommand=" + proxy,
		"-F", "none",
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=" + strconv.Itoa(ConnectTimeoutSeconds),
		"-o", "ServerAliveInterval=10",
		"-o", "ServerAliveCountMax=12",
		"-o", "BatchMode=yes",
	}
}

// Args returns a whole ssh argument list (without "ssh"): the fixed options,
// the user's extra options, "--", the destination and, if any, the command.
// OpenSSH goes on reading options after the destination (a command word
// "-oProxyCommand=..." would run on our side), unless "--" ends them first.
// ssh joins its command words with spaces for the remote shell, so each word
// is quoted here to arrive as exactly one argument.
func Args(keyPath, proxy string, extra []string, user string, cmd []string) []string {
	a := Options(keyPath, proxy)
	a = append(a, extra...)
	a = append(a, "--", user+"@"+Host)
	if len(cmd) > 0 {
		a = append(a, QuoteCommand(cmd))
	}
	return a
}

// QuoteCommand quotes words for a POSIX shell. sshd runs `SHELL -c
// COMMAND`: a first word starting with "-" is quoted even when safe, or the
// shell would take it for its own option.
func QuoteCommand(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
		if i == 0 && q[i] == w && strings.HasPrefix(w, "-") {
			q[i] = "'" + w + "'"
		}
	}
	return strings.Join(q, " ")
}

// Quote quotes one word for a POSIX shell; safe words stay as they are.
func Quote(w string) string {
	if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
