package fakebroker

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string // fragments the error must contain; none: valid
	}{
		{"zero values take defaults", Options{}, nil},
		{"disabled rate limits", Options{AuthRateLimit: -1, UpgradeRateLimit: -1}, nil},
		{"negative durations", Options{GrantTTL: -1, TaskTimeout: -time.Second}, []string{"GrantTTL", "TaskTimeout"}},
		{"negative payload", Options{MaxPayload: -1, DrainTimeout: -1}, []string{"MaxPayload", "DrainTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted invalid options")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if _, err := Start(t.Context(), tt.opts); err == nil {
				t.Error("Start accepted invalid options")
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	if got.Addr != "127.0.0.1:0" || got.AuthToken != "test-token" || got.GrantTTL != 30*time.Second ||
		got.HeartbeatInterval != 30*time.Second || got.AcceptTimeout != 2*time.Second ||
		got.TaskTimeout != 300*time.Second || got.TaskRequestTimeout != 60*time.Second ||
		got.DrainTimeout != 24*time.Second || got.MaxPayload != 1<<30 || got.AuthRateLimit != 5 ||
		got.UpgradeRateLimit != 5 || got.RateLimitWindow != time.Second || got.Logger == nil {
		t.Errorf("defaults %+v", got)
	}
}
