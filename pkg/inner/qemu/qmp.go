package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
	return QMPRun(ctx, path, Command{Execute: cmd})
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
