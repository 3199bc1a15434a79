package plans

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

func TestRedisTiers(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer c.Close()
	r := NewRedisTiers(c, DefaultRedisConfig(), time.Second, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	c.HSet(ctx, "user:alice", "tier", "professional")
	c.HSet(ctx, "user:bob", "name", "Bob")
	c.Set(ctx, "session:abc", `{"user_id":"carol","tier":"starter","expires":1}`, 0)
	c.Set(ctx, "session:def", `{"user_id":42,"tier":"enterprise"}`, 0)
	c.Set(ctx, "session:bad", `not json`, 0)
	tiers, err := r.Tiers(ctx, []string{"alice", "bob", "nobody"})
	if err != nil || len(tiers) != 1 || tiers["alice"] != "professional" {
		t.Errorf("Tiers = %v, %v", tiers, err)
	}
	sessions, err := r.SessionTiers(ctx)
	if err != nil || sessions["carol"] != "starter" || sessions["42"] != "enterprise" || len(sessions) != 2 {
		t.Errorf("SessionTiers = %v, %v", sessions, err)
	}
	srv.Stop()
	if _, err := r.Tiers(ctx, []string{"alice"}); err == nil {
		t.Error("no error with Redis down")
	}
}
