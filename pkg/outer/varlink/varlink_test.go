package varlink

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fakeBackend answers with fixed data and records Run's parameters.
type fakeBackend struct {
	ran     chan RunParams
	runErr  error
	blockCh chan struct{} // Run waits here until ctx ends, when set
}

func (f *fakeBackend) List(context.Context) (ListReply, error) {
	return ListReply{Images: []string{"localhost/bcvk-sample:latest"}}, nil
}

func (f *fakeBackend) Ps(context.Context) (PsReply, error) {
	return PsReply{ContainerIDs: []string{}}, nil
}

func (f *fakeBackend) Run(ctx context.Context, p RunParams) (RunReply, error) {
	if f.ran != nil {
		f.ran <- p
	}
	if f.blockCh != nil {
		close(f.blockCh)
		<-ctx.Done()
		return RunReply{}, ctx.Err()
	}
	if f.runErr != nil {
		return RunReply{}, f.runErr
	}
	return RunReply{ContainerID: "0123456789abcdef"}, nil
}

func (f *fakeBackend) GetSshConnectionInfo(_ context.Context, p SSHInfoParams) (SSHInfoReply, error) {
	return SSHInfoReply{ContainerID: p.ContainerID, KeyPath: "/k", User: "root", Host: "vm", Port: 22}, nil
}

func (f *fakeBackend) ToDisk(_ context.Context, p ToDiskParams) (ToDiskReply, error) {
	return ToDiskReply{Path: p.TargetDisk}, nil
}

// serve starts the service on a socket in a temporary directory; the
// returned function stops it and waits.
func serve(t *testing.T, b Backend) (string, func()) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bcvk.sock")
	l, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- NewBcvk(b, "1.2.3").Serve(ctx, l) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return sock, stop
}

// client is a raw connection: what is written is what the server reads.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, sock string) *client {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(raw)); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads one message, without its NUL.
func (c *client) recv() string {
	c.t.Helper()
	b, err := c.r.ReadBytes(0)
	if err != nil {
		c.t.Fatalf("reading a reply: %v (read %q)", err, b)
	}
	return string(b[:len(b)-1])
}

func (c *client) call(method, params string) string {
	c.t.Helper()
	c.send(`{"method":"` + method + `","parameters":` + params + "}\x00")
	return c.recv()
}

func TestGetInfoGolden(t *testing.T) {
	sock, _ := serve(t, &fakeBackend{})
	got := dial(t, sock).call("org.varlink.service.GetInfo", "{}")
	golden(t, "getinfo.golden", got+"\n")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -run %s -update rewrites it):\ngot:\n%s\nwant:\n%s", name, t.Name(), got, want)
	}
}

// The descriptions are what clients see of the API: pinned as golden
// files, and each method they declare is served, and each served method
// declared.
func TestInterfaceDescriptions(t *testing.T) {
	sock, _ := serve(t, &fakeBackend{})
	c := dial(t, sock)
	s := NewBcvk(&fakeBackend{}, "x")
	for _, name := range s.Info().Interfaces {
		t.Run(name, func(t *testing.T) {
			var rep struct {
				Parameters struct{ Description string }
				Error      string
			}
			raw := c.call("org.varlink.service.GetInterfaceDescription", `{"interface":"`+name+`"}`)
			if err := json.Unmarshal([]byte(raw), &rep); err != nil || rep.Error != "" {
				t.Fatalf("reply %s: %v", raw, err)
			}
			d := rep.Parameters.Description
			golden(t, name+".golden", d)
			if first := strings.SplitN(strings.TrimSpace(stripComments(d)), "\n", 2)[0]; first != "interface "+name {
				t.Errorf("first statement %q, want interface %s", first, name)
			}
			declared := regexp.MustCompile(`(?m)^method (\w+)\(`).FindAllStringSubmatch(d, -1)
			var names []string
			for _, m := range declared {
				names = append(names, m[1])
			}
			var served []string
			for m := range s.interfaces[name].Methods {
				served = append(served, m)
			}
			sort.Strings(names)
			sort.Strings(served)
			if strings.Join(names, ",") != strings.Join(served, ",") {
				t.Errorf("declared methods %v, served %v", names, served)
			}
		})
	}
}

func stripComments(d string) string {
	var out []string
	for _, l := range strings.Split(d, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestDispatchAndErrors(t *testing.T) {
	sock, _ := serve(t, &fakeBackend{runErr: errors.New("pulling docker.io/nope: not found")})
	c := dial(t, sock)
	for _, tc := range []struct {
		name, method, params, want string
	}{
		{"list", "io.bootc.vk.images.List", `{}`,
			`{"parameters":{"images":["localhost/bcvk-sample:latest"]}}`},
		{"no parameters at all", "io.bootc.vk.ephemeral.Ps", `null`,
			`{"parameters":{"container_ids":[]}}`},
		{"unknown interface", "io.bootc.vk.nope.List", `{}`,
			`{"parameters":{"interface":"io.bootc.vk.nope"},"error":"org.varlink.service.InterfaceNotFound"}`},
		{"unknown method", "io.bootc.vk.images.Remove", `{}`,
			`{"parameters":{"method":"io.bootc.vk.images.Remove"},"error":"org.varlink.service.MethodNotFound"}`},
		{"method without interface", "List", `{}`,
			`{"parameters":{"parameter":"method"},"error":"org.varlink.service.InvalidParameter"}`},
		{"wrong type", "io.bootc.vk.ephemeral.Run", `{"image":"x","opts":{"vcpus":"two"}}`,
			`{"parameters":{"parameter":"opts.vcpus"},"error":"org.varlink.service.InvalidParameter"}`},
		{"unknown field", "io.bootc.vk.ephemeral.Run", `{"image":"x","opts":{"cpus":2}}`,
			`{"parameters":{"parameter":"cpus"},"error":"org.varlink.service.InvalidParameter"}`},
		{"missing image", "io.bootc.vk.ephemeral.Run", `{}`,
			`{"parameters":{"parameter":"image"},"error":"org.varlink.service.InvalidParameter"}`},
		{"parameters not an object", "io.bootc.vk.ephemeral.Run", `[1]`,
			`{"parameters":{"parameter":"parameters"},"error":"org.varlink.service.InvalidParameter"}`},
		{"backend error", "io.bootc.vk.ephemeral.Run", `{"image":"docker.io/nope"}`,
			`{"parameters":{"message":"pulling docker.io/nope: not found"},"error":"io.bootc.vk.ephemeral.PodmanError"}`},
		{"missing target", "io.bootc.vk.todisk.ToDisk", `{"source_image":"x"}`,
			`{"parameters":{"parameter":"target_disk"},"error":"org.varlink.service.InvalidParameter"}`},
		{"unknown description", "org.varlink.service.GetInterfaceDescription", `{"interface":"a.b"}`,
			`{"parameters":{"interface":"a.b"},"error":"org.varlink.service.InterfaceNotFound"}`},
		{"ssh info", "io.bootc.vk.ephemeral.GetSshConnectionInfo", `{"container_id":"abc"}`,
			`{"parameters":{"container_id":"abc","key_path":"/k","user":"root","host":"vm","port":22,"proxy_command":"","ssh_config":""}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.call(tc.method, tc.params); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestErrorNamesPerInterface(t *testing.T) {
	s := NewBcvk(&fakeBackend{}, "x")
	for iface, want := range map[string]string{
		ImagesInterface:    "io.bootc.vk.images.PodmanError",
		EphemeralInterface: "io.bootc.vk.ephemeral.PodmanError",
		ToDiskInterface:    "io.bootc.vk.todisk.Failed",
	} {
		e := s.interfaces[iface].Fail(errors.New("boom"))
		if e.Name != want || e.Error() != want+": boom" {
			t.Errorf("%s: %s %q", iface, e.Name, e.Error())
		}
	}
}

func TestFraming(t *testing.T) {
	ran := make(chan RunParams, 1)
	sock, _ := serve(t, &fakeBackend{ran: ran})
	c := dial(t, sock)
	// Two requests in one write, the second split over two: answered in
	// order.
	c.send(`{"method":"io.bootc.vk.images.List"}` + "\x00" + `{"method":"io.bootc.vk.ephemeral.Ps",`)
	c.send(`"more":true}` + "\x00")
	if got := c.recv(); !strings.Contains(got, `"images"`) {
		t.Errorf("first reply %s", got)
	}
	// A method that does not stream answers a "more" call once, without
	// "continues".
	if got := c.recv(); got != `{"parameters":{"container_ids":[]}}` {
		t.Errorf("more reply %s", got)
	}
	// oneway: the call happens, no reply comes; the next call's does.
	c.send(`{"method":"io.bootc.vk.ephemeral.Run","parameters":{"image":"img","opts":{"name":"n","kargs":["a=1"]}},"oneway":true}` + "\x00")
	p := <-ran
	if p.Image != "img" || *p.Opts.Name != "n" || p.Opts.Kargs[0] != "a=1" {
		t.Errorf("Run got %+v", p)
	}
	if got := c.call("io.bootc.vk.images.List", "{}"); !strings.Contains(got, `"images"`) {
		t.Errorf("reply after oneway %s", got)
	}
	if got := c.call("org.varlink.service.GetInfo", `{}`); !strings.Contains(got, `"vendor":"io.bootc.vk"`) {
		t.Errorf("GetInfo %s", got)
	}
}

// A message that is not JSON ends its connection, not the service.
func TestGarbageEndsOnlyItsConnection(t *testing.T) {
	sock, _ := serve(t, &fakeBackend{})
	bad := dial(t, sock)
	bad.send("this is not json\x00")
	if _, err := bad.r.ReadBytes(0); err == nil {
		t.Error("the connection stayed open after garbage")
	}
	if got := dial(t, sock).call("io.bootc.vk.images.List", "{}"); !strings.Contains(got, "images") {
		t.Errorf("after garbage on another connection: %s", got)
	}
	big := dial(t, sock)
	go big.c.Write([]byte(strings.Repeat("x", MaxMessage+8192)))
	if _, err := big.r.ReadBytes(0); err == nil {
		t.Error("an oversized message got a reply")
	}
}

// Stopping cancels the calls in progress, waits for them and removes the
// socket file.
func TestStopCancelsCallsAndRemovesSocket(t *testing.T) {
	block := make(chan struct{})
	sock, stop := serve(t, &fakeBackend{blockCh: block})
	c := dial(t, sock)
	c.send(`{"method":"io.bootc.vk.ephemeral.Run","parameters":{"image":"x"}}` + "\x00")
	<-block
	stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after stop: %v", err)
	}
}

func TestListenAddresses(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{"tcp:127.0.0.1:1", "unix:", dir + "/x", "unix:" + dir + "/s;mode=0666"} {
		if _, err := Listen(bad); err == nil {
			t.Errorf("Listen(%q) succeeded", bad)
		}
	}
	// A file that is not a socket is never replaced.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen("unix:" + file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a file: %v", err)
	}
	// A live socket is in use; a dead one (left by a killed bcvk) is
	// replaced.
	sock := filepath.Join(dir, "s")
	l, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:" + sock); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen: %v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after Close: %v", err)
	}
}
