package conn

import (
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	good := []struct {
		in   string
		want URI
		out  string // String(); "" means in
	}{
		{in: "qemu:///system", want: URI{Transport: TransportUnix, Mode: ModeSystem}},
		{in: "qemu:///session", want: URI{Transport: TransportUnix, Mode: ModeSession}},
		{in: "qemu+unix:///system", want: URI{Transport: TransportUnix, ExplicitUnix: true, Mode: ModeSystem}},
		{in: "qemu+unix:///session?socket=/run/user/1000/libvirt/virtqemud-sock",
			want: URI{Transport: TransportUnix, ExplicitUnix: true, Mode: ModeSession, Socket: "/run/user/1000/libvirt/virtqemud-sock"}},
		{in: "qemu:///system?socket=/tmp/a%20b", want: URI{Transport: TransportUnix, Mode: ModeSystem, Socket: "/tmp/a b"}},
		{in: "qemu+tcp://127.0.0.1/system", want: URI{Transport: TransportTCP, Hostname: "127.0.0.1", Mode: ModeSystem}},
		{in: "qemu+tcp://h.example:16510/system", want: URI{Transport: TransportTCP, Hostname: "h.example", Port: 16510, Mode: ModeSystem}},
		{in: "qemu+tcp://[::1]:16509/system", want: URI{Transport: TransportTCP, Hostname: "::1", Port: 16509, Mode: ModeSystem}},
		{in: "qemu+ssh://host/system", want: URI{Transport: TransportSSH, Hostname: "host", Mode: ModeSystem}},
		{in: "qemu+ssh://root@10.0.0.2:2222/system?keyfile=/k/id&known_hosts=/k/kh&no_verify=1&socket=/var/run/libvirt/virtqemud-sock",
			want: URI{Transport: TransportSSH, User: "root", Hostname: "10.0.0.2", Port: 2222, Mode: ModeSystem,
				KeyFile: "/k/id", KnownHosts: "/k/kh", NoVerify: true, Socket: "/var/run/libvirt/virtqemud-sock"}},
		// Canonical order of parameters; no_verify=0 and no_tty are dropped.
		{in: "qemu+ssh://u@h/system?socket=/s&no_verify=0&no_tty=1&keyfile=/k",
			want: URI{Transport: TransportSSH, User: "u", Hostname: "h", Mode: ModeSystem, Socket: "/s", KeyFile: "/k"},
			out:  "qemu+ssh://u@h/system?keyfile=/k&socket=/s"},
		{in: "QEMU+SSH://h/system", want: URI{Transport: TransportSSH, Hostname: "h", Mode: ModeSystem}, out: "qemu+ssh://h/system"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseURI(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if u != tc.want {
				t.Fatalf("got %+v\nwant %+v", u, tc.want)
			}
			out := tc.out
			if out == "" {
				out = tc.in
			}
			if u.String() != out {
				t.Errorf("String() = %q, want %q", u.String(), out)
			}
			again, err := ParseURI(u.String())
			if err != nil || again != u {
				t.Errorf("round trip: %+v, %v", again, err)
			}
		})
	}

	bad := []struct{ in, msg string }{
		{"", "empty; accepted: qemu:///system"},
		{"/system", "not a URI of the form"},
		{"qemu:system", "not a URI of the form"},
		{"xen:///system", `driver "xen" is not supported by bcvk, only qemu; accepted: qemu:///system`},
		{"lxc+ssh://h/system", `driver "lxc" is not supported`},
		{"test:///default", `driver "test" is not supported`},
		{"qemu+tls://h/system", `transport "tls" is not supported by bcvk; use qemu+ssh or qemu+tcp`},
		{"qemu+libssh://h/system", `transport "libssh" is not supported by bcvk; use qemu+ssh or qemu+tcp`},
		{"qemu+libssh2://h/system", `transport "libssh2" is not supported by bcvk`},
		{"qemu+ext:///system?command=/bin/x", `transport "ext" is not supported by bcvk`},
		{"qemu://h/system", "means TLS, which is not supported by bcvk; use qemu+ssh or qemu+tcp"},
		{"qemu:///embed?root=/x", `path "/embed": only /system and /session are accepted`},
		{"qemu:///", `path "/": only /system and /session`},
		{"qemu://", `path "": only /system and /session`},
		{"qemu:///system/", `path "/system/"`},
		{"qemu+ssh://h/session", "/session is only for the local daemon"},
		{"qemu+tcp://h/session", "/session is only for the local daemon"},
		{"qemu+ssh:///system", "qemu+ssh needs a host"},
		{"qemu+tcp://:16509/system", "qemu+tcp needs a host"},
		{"qemu+unix://h/system", "a local (unix) URI has no host"},
		{"qemu+tcp://h:0/system", `port "0" is not a number from 1 to 65535`},
		{"qemu+tcp://h:70000/system", `port "70000"`},
		{"qemu+ssh://h:/system", "empty port"},
		{"qemu+tcp://u@h/system", "a user name is only used with qemu+ssh"},
		{"qemu+ssh://u:pw@h/system", "passwords in the URI are not supported"},
		{"qemu+ssh://@h/system", "empty user name"},
		{"qemu+ssh://-oProxyCommand=x/system", "starts with '-'"},
		{"qemu+tcp://[fe80::1%25eth0]/system", `character "%" is not accepted`},
		{"qemu+ssh://h%C3%A9/system", `character "\xc3" is not accepted`},
		{"qemu+tcp://0::1/system", "an IPv6 address goes in brackets"},
		{"qemu+tcp://[1:2]/system", "invalid host"},
		{"qemu:///system\n", "control character"},
		{"qemu:///system?socket=/a\x00", "control character"},
		{"qemu:///system?socket=/a%0Ab", "socket= has a control character"},
		{"qemu+ssh://u%0A@h/system", "control character"},
		{"qemu:///system?socket=relative", "not an absolute path"},
		{"qemu+tcp://h/system?socket=/s", "socket= is for unix and ssh URIs"},
		{"qemu:///system?keyfile=/k", "keyfile= is only for qemu+ssh"},
		{"qemu+tcp://h/system?known_hosts=/k", "known_hosts= is only for qemu+ssh"},
		{"qemu+tcp://h/system?no_verify=1", "no_verify= is only for qemu+ssh"},
		{"qemu+ssh://h/system?no_verify=yes", "use no_verify=1 or no_verify=0"},
		{"qemu+ssh://h/system?keyfile=", "keyfile= is empty"},
		{"qemu+ssh://h/system?socket=/a&socket=/b", "given 2 times"},
		{"qemu+ssh://h/system?sshauth=agent", "parameter sshauth= is not supported by bcvk; accepted: socket=, keyfile=, known_hosts=, no_verify="},
		{"qemu:///system?mode=direct", "parameter mode= is not supported"},
		{"qemu:///system?name=qemu:///session", "parameter name= is not supported"},
		{"qemu:///system#x", "fragment"},
		{"qemu:///system?a=%zz", "query"},
	}
	for _, tc := range bad {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseURI(tc.in)
			if err == nil {
				t.Fatalf("accepted: %+v", u)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not contain %q", err, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "libvirt URI ") {
				t.Errorf("error %q does not name the URI", err)
			}
		})
	}
}

func TestURIAccessors(t *testing.T) {
	for _, tc := range []struct {
		in         string
		remote     bool
		host, addr string
		driver     string
	}{
		{"qemu:///system", false, "", "", "qemu:///system"},
		{"qemu:///session", false, "", "", "qemu:///session"},
		{"qemu+tcp://h/system", true, "h", "h:16509", "qemu:///system"},
		{"qemu+tcp://[::1]/system", true, "::1", "[::1]:16509", "qemu:///system"},
		{"qemu+ssh://u@h/system", true, "h", "h:22", "qemu:///system"},
		{"qemu+ssh://h:2222/system", true, "h", "h:2222", "qemu:///system"},
	} {
		u, err := ParseURI(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if u.Remote() != tc.remote || u.Host() != tc.host || u.Addr() != tc.addr || string(u.DriverURI()) != tc.driver {
			t.Errorf("%s: Remote %v Host %q Addr %q DriverURI %q", tc.in, u.Remote(), u.Host(), u.Addr(), u.DriverURI())
		}
	}
}

func TestDefaultURI(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvDefaultURI {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		flag, env, want, err string
	}{
		{want: "qemu:///system"},
		{env: "qemu+ssh://h/system", want: "qemu+ssh://h/system"},
		{flag: "qemu:///session", env: "qemu+ssh://h/system", want: "qemu:///session"},
		{flag: "qemu+tls://h/system", err: "--connect: libvirt URI \"qemu+tls://h/system\": transport \"tls\""},
		{env: "xen:///system", err: "LIBVIRT_DEFAULT_URI: libvirt URI \"xen:///system\": driver"},
		// A good flag wins over a bad environment, as with virsh.
		{flag: "qemu:///system", env: "junk", want: "qemu:///system"},
	} {
		u, err := DefaultURI(tc.flag, env(tc.env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("flag %q env %q: error %v, want %q", tc.flag, tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("flag %q env %q: %v, %v; want %s", tc.flag, tc.env, u, err, tc.want)
		}
	}
}

func TestLocalSocket(t *testing.T) {
	envOf := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	existing := func(paths ...string) func(string) bool {
		return func(p string) bool {
			for _, e := range paths {
				if e == p {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name, uri string
		env       func(string) string
		exists    func(string) bool
		want, err string
	}{
		{"system, libvirtd", "qemu:///system", envOf(), existing(SystemSocket, SystemVirtqemudSock), SystemSocket, ""},
		{"system, virtqemud only", "qemu:///system", envOf(), existing(SystemVirtqemudSock), SystemVirtqemudSock, ""},
		{"system, none: the usual path for the error", "qemu:///system", envOf(), existing(), SystemSocket, ""},
		{"socket= wins", "qemu+unix:///system?socket=/x/sock", envOf(), existing(SystemSocket), "/x/sock", ""},
		{"session, runtime dir", "qemu:///session", envOf("XDG_RUNTIME_DIR", "/run/user/1000", "HOME", "/home/u"),
			existing("/run/user/1000/libvirt/libvirt-sock"), "/run/user/1000/libvirt/libvirt-sock", ""},
		{"session, virtqemud", "qemu:///session", envOf("XDG_RUNTIME_DIR", "/run/user/1000"),
			existing("/run/user/1000/libvirt/virtqemud-sock"), "/run/user/1000/libvirt/virtqemud-sock", ""},
		{"session, none", "qemu:///session", envOf("XDG_RUNTIME_DIR", "/run/user/1000"),
			existing(), "/run/user/1000/libvirt/libvirt-sock", ""},
		{"session as root without XDG_RUNTIME_DIR", "qemu:///session", envOf("HOME", "/root"),
			existing("/root/.cache/libvirt/virtqemud-sock"), "/root/.cache/libvirt/virtqemud-sock", ""},
		{"session, XDG_CACHE_HOME", "qemu:///session", envOf("HOME", "/root", "XDG_CACHE_HOME", "/c"),
			existing(), "/c/libvirt/libvirt-sock", ""},
		{"session, no HOME", "qemu:///session", envOf(), existing(), "", "neither XDG_RUNTIME_DIR nor HOME is set"},
		{"session socket=", "qemu:///session?socket=/s", envOf(), existing(), "/s", ""},
		{"remote", "qemu+ssh://h/system", envOf(), existing(), "", "is not a local URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			got, err := LocalSocket(u, tc.env, tc.exists)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// FuzzParseURI: whatever ParseURI accepts, String gives back in a form that
// parses to the same URI.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"qemu:///system", "qemu+unix:///session?socket=/s", "qemu+tcp://[::1]:1/system",
		"qemu+ssh://u@h:2/system?keyfile=/k%26x&known_hosts=/kh&no_verify=1&socket=/s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		again, err := ParseURI(u.String())
		if err != nil {
			t.Fatalf("%q -> %q: %v", s, u.String(), err)
		}
		if again != u {
			t.Fatalf("%q -> %q: %+v != %+v", s, u.String(), again, u)
		}
	})
}
