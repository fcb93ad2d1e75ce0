package kafkasink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger passes the Kafka client's warnings and errors to the sink's
// logger.
type kgoLogger struct{ l *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	if level == kgo.LogLevelError {
		lvl = slog.LevelError
	}
	k.l.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}

// connectHook notes a failed connection to a broker as the sink's last
// error, while the client keeps retrying: a sink whose broker is down
// says so before its retry budget runs out.
type connectHook struct{ s *sink }

func (h connectHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.s.note(fmt.Errorf("connecting to broker %s: %w", net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port)), err))
	}
}
