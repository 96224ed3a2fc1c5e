package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
)

// QMP sends one command over the QMP socket at path: it reads the greeting,
// negotiates capabilities and runs cmd.
func QMP(ctx context.Context, path, cmd string) error {
	_, err := QMPQuery(ctx, path, cmd)
	return err
}

// Status returns the VM's run state ("running", "internal-error", ...).
func Status(ctx context.Context, path string) (string, error) {
	raw, err := QMPQuery(ctx, path, "query-status")
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}

// QMPQuery runs cmd and returns its "return" value.
func QMPQuery(ctx context.Context, path, cmd string) (json.RawMessage, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	r := bufio.NewReader(conn)
	if _, err := r.ReadBytes('\n'); err != nil { // greeting
		return nil, fmt.Errorf("QMP greeting: %w", err)
	}
	var ret json.RawMessage
	for _, c := range []string{"qmp_capabilities", cmd} {
		b, _ := json.Marshal(map[string]string{"execute": c})
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, err
		}
		if ret, err = readReturn(r); err != nil {
			return nil, fmt.Errorf("QMP %s: %w", c, err)
		}
	}
	return ret, nil
}

// readReturn skips asynchronous events until the command's reply.
func readReturn(r *bufio.Reader) (json.RawMessage, error) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		var m struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s", m.Error.Desc)
		}
		if m.Return != nil {
			return m.Return, nil
		}
	}
}
