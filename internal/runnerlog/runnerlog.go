// Package runnerlog writes pyrunner's log in n8n's runner's format, so
// that n8n's launcher and a person at a terminal see what they see from
// n8n's own runner. Handler is the one type; New builds it.
package runnerlog

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler writes n8n's runner's log format (docs/protocol.md §12): the bare
// message when the stream is not a terminal (under the launcher), else
// "date time<TAB>LEVEL<TAB>message", coloured unless NO_COLOR. Attributes
// follow as key=value. Warnings and errors go to stderr, the rest to
// stdout, so that the launcher, which shows stdout only at debug, still
// shows problems.
type Handler struct {
	level  slog.Leveler
	out    io.Writer
	errOut io.Writer
	tty    bool
	color  bool
	attrs  string
	mu     *sync.Mutex
}

// New is a Handler writing records of level and above: warnings and
// errors to errOut, the rest to out.
func New(level slog.Leveler, out, errOut *os.File, noColor bool) *Handler {
	tty := isTerminal(out)
	return &Handler{level: level, out: out, errOut: errOut, tty: tty, color: tty && !noColor, mu: &sync.Mutex{}}
}

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if h.tty {
		b.WriteString(r.Time.Format("2006-01-02 15:04:05.000"))
		b.WriteByte('\t')
		b.WriteString(h.levelName(r.Level))
		b.WriteByte('\t')
	}
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, a)
		return true
	})
	b.WriteByte('\n')
	w := h.out
	if r.Level >= slog.LevelWarn {
		w = h.errOut
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(w, b.String())
	return err
}

func (h *Handler) levelName(l slog.Level) string {
	name, color := "INFO", "32"
	switch {
	case l >= slog.LevelError:
		name, color = "ERROR", "31"
	case l >= slog.LevelWarn:
		name, color = "WARNING", "33"
	case l < slog.LevelInfo:
		name, color = "DEBUG", "36"
	}
	if h.color {
		return "\x1b[" + color + "m" + name + "\x1b[0m"
	}
	return name
}

func writeAttr(b *strings.Builder, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	b.WriteByte(' ')
	b.WriteString(a.Key)
	b.WriteByte('=')
	v := a.Value.Resolve()
	var s string
	switch v.Kind() {
	case slog.KindDuration:
		s = v.Duration().Round(time.Microsecond).String()
	default:
		s = v.String()
	}
	if strings.ContainsAny(s, " \t\n\"=") || s == "" {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		writeAttr(&b, a)
	}
	h2 := *h
	h2.attrs = b.String()
	return &h2
}

// WithGroup is not used by pyrunner; groups are flattened.
func (h *Handler) WithGroup(string) slog.Handler { return h }
