package supervisor

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/bcvk/bcvk/pkg/inner/qemu/qmptest"
)

// The test binary, re-executed, plays QEMU and virtiofsd: it speaks QMP and
// writes console lines as the script in its environment says.
const (
	fakeOn        = "BCVK_FAKE"            // set: play the program the arguments are for
	fakeScript    = "BCVK_FAKE_SCRIPT"     // steps for QEMU under TCG
	fakeScriptKVM = "BCVK_FAKE_SCRIPT_KVM" // steps for QEMU under KVM
	fakeLog       = "BCVK_FAKE_LOG"        // when set: QEMU's argv and QMP commands are appended here
)

// fakeRecord appends a line to the fake's log, if one is asked for.
func fakeRecord(line string) {
	if p := os.Getenv(fakeLog); p != "" {
		if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

func fakeMain() bool {
	if os.Getenv(fakeOn) == "" {
		return false
	}
	args := strings.Join(os.Args[1:], " ")
	switch {
	case strings.Contains(args, "-qmp "):
		fakeQEMU(os.Args[1:])
	case strings.Contains(args, "--socket-path="):
		fakeVirtiofsd(os.Args[1:])
	default:
		return false
	}
	return true
}

func fakeVirtiofsd(args []string) {
	for _, a := range args {
		if path, ok := strings.CutPrefix(a, "--socket-path="); ok {
			ln, err := net.Listen("unix", path)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			defer ln.Close()
		}
	}
	select {}
}

// fakeQEMU runs the script: steps separated by ';', each a verb and its
// words: say TEXT, event NAME [REASON], exit N, abort, abort-once FILE,
// await-powerdown, await-migration (until the VM runs again), await-file
// PATH (until it exists, up to 10 s), hang.
func fakeQEMU(args []string) {
	script := os.Getenv(fakeScript)
	var qmpPath string
	for i, a := range args {
		switch {
		case a == "-qmp":
			qmpPath = strings.TrimPrefix(strings.Split(args[i+1], ",")[0], "unix:")
		case a == "-accel" && args[i+1] == "kvm":
			script = os.Getenv(fakeScriptKVM)
		}
	}
	powerdown := make(chan struct{}, 8)
	migrated := make(chan struct{}, 1)
	var srv *qmptest.Server
	ln, err := net.Listen("unix", qmpPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeRecord("argv " + strings.Join(args, " "))
	srv = qmptest.New(func(cmd string, raw json.RawMessage) (any, string) {
		fakeRecord("qmp " + cmd + " " + string(raw))
		switch cmd {
		case "migrate", "migrate-incoming":
			go func() {
				srv.Emit("MIGRATION", map[string]string{"status": "active"})
				srv.Emit("MIGRATION", map[string]string{"status": "completed"})
			}()
		case "cont":
			migrated <- struct{}{}
		case "system_powerdown":
			powerdown <- struct{}{}
		case "human-monitor-command":
			// A hung vCPU: the same instruction pointer every time.
			return "CPU#0\nRIP=000000000000fff0 RFL=00000002\n", ""
		case "query-status":
			return map[string]any{"status": "internal-error", "running": false}, ""
		}
		return nil, ""
	})
	srv.Start(ln)
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
	}
	for _, step := range strings.Split(script, ";") {
		verb, rest, _ := strings.Cut(strings.TrimSpace(step), " ")
		switch verb {
		case "say":
			fmt.Println(rest)
		case "event":
			name, reason, _ := strings.Cut(rest, " ")
			srv.Emit(name, map[string]any{"guest": true, "reason": reason})
		case "exit":
			var n int
			fmt.Sscan(rest, &n)
			ln.Close()
			os.Exit(n)
		case "abort-once":
			if _, err := os.Stat(rest); err == nil {
				continue
			}
			_ = os.WriteFile(rest, nil, 0o644)
			fallthrough
		case "abort":
			// Go's runtime catches SIGABRT; a shell in our place does not.
			_ = syscall.Exec("/bin/sh", []string{"sh", "-c", "kill -ABRT $$"}, os.Environ())
			os.Exit(98)
		case "await-migration":
			<-migrated
		case "await-file":
			for i := 0; i < 1000; i++ {
				if _, err := os.Stat(rest); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		case "await-powerdown":
			<-powerdown
		case "hang":
			select {}
		case "":
		default:
			fmt.Fprintln(os.Stderr, "fake qemu: unknown step", step)
			os.Exit(99)
		}
	}
	ln.Close()
}
