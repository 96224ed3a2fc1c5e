package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

func TestVsockWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type dial struct {
		armed, answered bool
		start, end      int
		dead            bool
	}
	for _, c := range []struct {
		name  string
		limit time.Duration
		dials []dial
	}{
		{"before the handover nothing counts", time.Minute, []dial{
			{false, false, 0, 15, false}, {false, false, 15, 30, false}, {false, false, 30, 45, false},
			{false, false, 45, 60, false}, {false, false, 60, 75, false},
		}},
		{"a minute without an answer", time.Minute, []dial{
			{true, false, 0, 15, false}, {true, false, 15, 30, false}, {true, false, 30, 45, false},
			{true, false, 45, 60, true},
		}},
		{"an answer starts the minute again", time.Minute, []dial{
			{true, false, 0, 15, false}, {true, false, 15, 30, false}, {true, true, 30, 31, false},
			{true, false, 31, 46, false}, {true, false, 46, 61, false}, {true, false, 61, 76, false},
			{true, false, 76, 91, true},
		}},
		{"the silence counts from the first armed dial", time.Minute, []dial{
			{false, false, 0, 15, false}, {true, false, 15, 30, false}, {true, false, 30, 45, false},
			{true, false, 45, 60, false}, {true, false, 60, 75, true},
		}},
		{"no limit, never dead", 0, []dial{
			{true, false, 0, 600, false}, {true, false, 600, 1200, false},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := vsockWatch{limit: c.limit}
			for i, d := range c.dials {
				if got := w.observe(d.armed, d.answered, at(d.start), at(d.end)); got != d.dead {
					t.Fatalf("dial %d (%+v): dead %v, want %v", i, d, got, d.dead)
				}
			}
		})
	}
}

func TestUnanswered(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("waiting for the guest to accept port 22: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("waiting for the guest to accept port 22: %w", context.Canceled), false},
		{io.EOF, false},
		{errors.New(`connecting to guest port 22: unexpected reply "x" from the vsock backend`), false},
	} {
		if got := unanswered(c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}
