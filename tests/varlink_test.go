package tests

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// varlinkClient is a varlink client of its own, written from the protocol
// (NUL-terminated JSON), so the server is checked against the wire format
// and not against its own code.
type varlinkClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialVarlink(t *testing.T, sock string) *varlinkClient {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("connecting to %s: %v", sock, err)
	}
	t.Cleanup(func() { c.Close() })
	return &varlinkClient{t: t, c: c, r: bufio.NewReader(c)}
}

// call sends one request and returns the reply's parameters and error
// name, within timeout.
func (v *varlinkClient) call(timeout time.Duration, method string, params any) (map[string]any, string) {
	v.t.Helper()
	req, err := json.Marshal(map[string]any{"method": method, "parameters": params})
	if err != nil {
		v.t.Fatal(err)
	}
	_ = v.c.SetDeadline(time.Now().Add(timeout))
	if _, err := v.c.Write(append(req, 0)); err != nil {
		v.t.Fatalf("%s: %v", method, err)
	}
	msg, err := v.r.ReadBytes(0)
	if err != nil {
		v.t.Fatalf("%s: reading the reply: %v", method, err)
	}
	var rep struct {
		Parameters map[string]any `json:"parameters"`
		Error      string         `json:"error"`
		Continues  bool           `json:"continues"`
	}
	if err := json.Unmarshal(msg[:len(msg)-1], &rep); err != nil {
		v.t.Fatalf("%s: reply %q: %v", method, msg, err)
	}
	if rep.Continues {
		v.t.Errorf("%s: a reply that continues to a call without more", method)
	}
	return rep.Parameters, rep.Error
}

// ok calls and fails the test on a varlink error.
func (v *varlinkClient) ok(timeout time.Duration, method string, params any) map[string]any {
	v.t.Helper()
	p, verr := v.call(timeout, method, params)
	if verr != "" {
		v.t.Fatalf("%s: error %s %v", method, verr, p)
	}
	return p
}

func strs(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			s, _ := e.(string)
			out = append(out, s)
		}
	}
	return out
}

// waitForSocket waits until sock answers, or the process ends.
func waitForSocket(t *testing.T, sock string, done <-chan error) {
	t.Helper()
	waitUntil(t, done, 30*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, func() string { return "the varlink socket " + sock })
}

// startVarlink starts `bcvk varlink serve` on a socket of its own and
// returns a client of it, and stop: it ends the server with SIGTERM, checks
// that it exits 143 having removed its socket, and returns its stderr.
func startVarlink(t *testing.T) (*varlinkClient, func() string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bcvk.sock")
	cmd, _, errb := bcvkCmd(t, sharedState, nil, "--runner-image", runnerImage(t), "varlink", "serve", "--address", "unix:"+sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
		}
	})
	waitForSocket(t, sock, done)
	stop := func() string {
		t.Helper()
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("the server did not end within a minute of SIGTERM")
		}
		if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
			t.Errorf("server exit status %d after SIGTERM; stderr:\n%s", code, errb)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left after SIGTERM: %v", err)
		}
		return errb.String()
	}
	return dialVarlink(t, sock), stop
}

// One VM boot: List, Run, GetSshConnectionInfo used by plain ssh, Ps, and
// the errors of bad calls and of a missing image, all on one server, which
// removes its socket on SIGTERM. ToDisk is checked on a real install in
// TestToDisk (its regeneration).
func TestVarlink(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-varlink"
	missing := "bcvk-test-varlink-missing"
	cleanupContainer(t, name)
	cleanupContainer(t, missing)
	v, stop := startVarlink(t)

	info := v.ok(10*time.Second, "org.varlink.service.GetInfo", map[string]any{})
	if got := strs(info["interfaces"]); !slices.Equal(got, []string{"io.bootc.vk.ephemeral", "io.bootc.vk.images", "io.bootc.vk.todisk", "org.varlink.service"}) {
		t.Errorf("GetInfo interfaces %v", got)
	}
	t.Run("bad-calls", func(t *testing.T) {
		if p, e := v.call(10*time.Second, "io.bootc.vk.ephemeral.Remove", map[string]any{}); e != "org.varlink.service.MethodNotFound" {
			t.Errorf("unknown method: %s %v", e, p)
		}
		if p, e := v.call(10*time.Second, "io.bootc.vk.ephemeral.Run", map[string]any{"image": sampleImage(), "opts": map[string]any{"vcpus": "two"}}); e != "org.varlink.service.InvalidParameter" || p["parameter"] != "opts.vcpus" {
			t.Errorf("vcpus as a string: %s %v", e, p)
		}
		if p, e := v.call(10*time.Second, "io.bootc.vk.ephemeral.Run", map[string]any{"image": sampleImage(), "opts": map[string]any{"memory": "4Q"}}); e != "io.bootc.vk.ephemeral.PodmanError" || !strings.Contains(p["message"].(string), `--memory: invalid size "4Q"`) {
			t.Errorf("memory 4Q: %s %v", e, p)
		}
		if p, e := v.call(time.Minute, "io.bootc.vk.ephemeral.GetSshConnectionInfo", map[string]any{"container_id": "no-such-vm"}); e != "io.bootc.vk.ephemeral.PodmanError" || !strings.Contains(p["message"].(string), "no such VM") {
			t.Errorf("ssh info of no VM: %s %v", e, p)
		}
	})
	t.Run("run-missing-image", func(t *testing.T) {
		img := "localhost/bcvk-test-no-such-image:latest"
		p, e := v.call(2*time.Minute, "io.bootc.vk.ephemeral.Run", map[string]any{"image": img, "opts": map[string]any{"name": missing}})
		msg, _ := p["message"].(string)
		if e != "io.bootc.vk.ephemeral.PodmanError" || !strings.Contains(msg, img) {
			t.Errorf("Run of a missing image: %s %v", e, p)
		}
		t.Logf("bcvk's message: %s", msg)
		assertNothingLeft(t, missing, sharedState)
	})

	list := v.ok(time.Minute, "io.bootc.vk.images.List", map[string]any{})
	if imgs := strs(list["images"]); !slices.Contains(imgs, sampleImage()) {
		t.Errorf("List: %v lacks %s", imgs, sampleImage())
	}

	run := v.ok(bootTimeout, "io.bootc.vk.ephemeral.Run", map[string]any{"image": sampleImage(),
		"opts": map[string]any{"name": name, "memory": "1G", "label": []string{"team=api"}, "ssh_keygen": true}})
	id, _ := run["container_id"].(string)
	out, err := exec.Command("podman", "inspect", "--format", `{{.Name}} {{index .Config.Labels "team"}}`, id).Output()
	if err != nil || strings.TrimSpace(string(out)) != name+" api" {
		t.Fatalf("Run's container_id %q: podman inspect says %q, %v", id, out, err)
	}

	t.Run("ps", func(t *testing.T) {
		if ids := strs(v.ok(time.Minute, "io.bootc.vk.ephemeral.Ps", map[string]any{})["container_ids"]); !slices.Contains(ids, id) {
			t.Errorf("Ps: %v lacks %s", ids, id)
		}
	})
	t.Run("ssh", func(t *testing.T) {
		si := v.ok(time.Minute, "io.bootc.vk.ephemeral.GetSshConnectionInfo", map[string]any{"container_id": id})
		port, _ := si["port"].(float64)
		if si["container_id"] != id {
			t.Errorf("container_id %v, want %s", si["container_id"], id)
		}
		out, err := exec.Command("ssh", "-i", si["key_path"].(string), "-p", strconv.Itoa(int(port)),
			"-o", "ProxyCommand="+si["proxy_command"].(string), "-o", "IdentitiesOnly=yes",
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
			si["user"].(string)+"@"+si["host"].(string), "echo via-varlink; id -un").CombinedOutput()
		if err != nil || string(out) != "via-varlink\n"+si["user"].(string)+"\n" {
			t.Errorf("plain ssh with GetSshConnectionInfo %v: %v: %q", si, err, out)
		}
	})

	// The Rust bcvk has no method to remove a VM: podman rm -f, or ours.
	if r := runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "rm", "-f", name); r.code != 0 {
		t.Fatalf("rm -f: exit %d: %s", r.code, r.stderr)
	}
	if ids := strs(v.ok(time.Minute, "io.bootc.vk.ephemeral.Ps", map[string]any{})["container_ids"]); slices.Contains(ids, id) {
		t.Errorf("Ps after rm: %v still has %s", ids, id)
	}

	stderr := stop()
	if strings.Contains(stderr, "Error:") {
		t.Errorf("the server printed an error:\n%s", stderr)
	}
	assertNothingLeft(t, name, sharedState)
}

// Socket activation: a listening socket as descriptor 3, LISTEN_FDS=1 and
// LISTEN_PID of the process itself; `bcvk varlink serve` and, as
// `varlinkctl exec:bcvk` starts the Rust bcvk, a bare `bcvk`.
func TestVarlinkSocketActivation(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	getInfo := func(t *testing.T, sock string, done <-chan error) {
		waitForSocket(t, sock, done)
		info := dialVarlink(t, sock).ok(10*time.Second, "org.varlink.service.GetInfo", map[string]any{})
		if info["product"] != "bcvk" || !slices.Contains(strs(info["interfaces"]), "io.bootc.vk.ephemeral") {
			t.Errorf("GetInfo: %v", info)
		}
	}
	// stop ends the server and checks it left the socket file, which is
	// its activator's.
	stop := func(t *testing.T, cmd *exec.Cmd, done <-chan error, sock string) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if _, err := os.Lstat(sock); err != nil {
			t.Errorf("the activator's socket file is gone: %v", err)
		}
	}
	for _, args := range [][]string{{"varlink", "serve"}, {}} {
		t.Run("exec-"+strings.Join(append([]string{"bcvk"}, args...), "-"), func(t *testing.T) {
			// sh sets LISTEN_PID to its own PID and execs bcvk, which
			// keeps it.
			sock := filepath.Join(t.TempDir(), "bcvk.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			f, err := l.(*net.UnixListener).File()
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			cmd, _, _ := bcvkCmd(t, sharedState, nil)
			cmd.Args = append([]string{"sh", "-c", `export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@"`, cmd.Path}, args...)
			cmd.Path = "/bin/sh"
			cmd.ExtraFiles = []*os.File{f}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			getInfo(t, sock, done)
			stop(t, cmd, done, sock)
		})
	}
	// `varlinkctl exec:bcvk` passes one end of a socket pair: bcvk serves
	// it and ends when the client closes its end.
	t.Run("connected-socket", func(t *testing.T) {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours, theirs := os.NewFile(uintptr(fds[0]), "client"), os.NewFile(uintptr(fds[1]), "bcvk")
		cmd, _, _ := bcvkCmd(t, sharedState, nil)
		cmd.Args = []string{"sh", "-c", `export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0"`, cmd.Path}
		cmd.Path = "/bin/sh"
		cmd.ExtraFiles = []*os.File{theirs}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		theirs.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		c, err := net.FileConn(ours)
		ours.Close()
		if err != nil {
			t.Fatal(err)
		}
		v := &varlinkClient{t: t, c: c, r: bufio.NewReader(c)}
		if info := v.ok(10*time.Second, "org.varlink.service.GetInfo", map[string]any{}); info["product"] != "bcvk" {
			t.Errorf("GetInfo: %v", info)
		}
		c.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bcvk ended with %v after the client closed", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("bcvk kept running after the client closed the connection")
		}
	})
	t.Run("systemd-socket-activate", func(t *testing.T) {
		ssa, err := exec.LookPath("systemd-socket-activate")
		if err != nil {
			t.Skip("systemd-socket-activate is not installed")
		}
		sock := filepath.Join(t.TempDir(), "bcvk.sock")
		cmd, _, _ := bcvkCmd(t, sharedState, nil)
		cmd.Args = []string{ssa, "-l", sock, "-E", "XDG_RUNTIME_DIR", cmd.Path, "varlink", "serve"}
		cmd.Path = ssa
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		getInfo(t, sock, done)
		if vctl, err := exec.LookPath("varlinkctl"); err == nil {
			out, err := exec.Command(vctl, "call", "unix:"+sock, "io.bootc.vk.images.List", "{}").CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"images"`) {
				t.Errorf("varlinkctl call: %v: %s", err, out)
			}
			out, err = exec.Command(vctl, "introspect", "unix:"+sock, "io.bootc.vk.ephemeral").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "GetSshConnectionInfo") {
				t.Errorf("varlinkctl introspect: %v: %s", err, out)
			}
		} else {
			t.Log("varlinkctl is not installed (systemd 255 and later have it): not called")
		}
		stop(t, cmd, done, sock)
	})
}
