package config

import (
	"fmt"
	"log/slog"
	"strings"
)

// Log is how pyrunner logs: n8n's runner's variables.
type Log struct {
	// LevelName is one of Python's level names; Level is its slog level.
	LevelName string `env:"N8N_RUNNERS_LAUNCHER_LOG_LEVEL, default=INFO"`
	NoColor   string `env:"NO_COLOR"` // set, even empty: no colours in a terminal
	// SentryDSN is read for compatibility: pyrunner does not report to
	// Sentry, and says so when it is set.
	SentryDSN string `env:"N8N_SENTRY_DSN"`
}

// Validate checks the level name, with n8n's runner's names.
func (l *Log) Validate() []error {
	if _, ok := parseLevel(l.LevelName); !ok {
		return []error{fmt.Errorf("N8N_RUNNERS_LAUNCHER_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got '%s'", l.LevelName)}
	}
	return nil
}

// Level is LevelName as slog's level (INFO when it is not valid).
func (l *Log) Level() slog.Level {
	level, _ := parseLevel(l.LevelName)
	return level
}

// parseLevel maps Python's level names to slog's.
func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO", "":
		return slog.LevelInfo, true
	case "WARN", "WARNING":
		return slog.LevelWarn, true
	case "ERROR", "CRITICAL":
		return slog.LevelError, true
	}
	return 0, false
}
