package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// Config is every setting pyrunner reads, by section. Each variable may
// also be given as <NAME>_FILE (the file's trimmed content); the direct
// variable wins.
type Config struct {
	Broker   Broker
	Log      Log
	Pool     Pool
	Limits   Limits
	Packages Packages
}

// Load reads every section through lookup and checks them all: what
// `pyrunner run` needs. The error lists every problem, one a line, each
// naming its variable; a value that is refused is left at its default
// meanwhile, so the returned Config is complete even then.
func Load(ctx context.Context, lookup envconfig.Lookuper) (*Config, error) {
	return load(ctx, lookup, true)
}

// LoadWithoutBroker is Load for a command that runs tasks without n8n
// (`pyrunner exec`): the broker section is read as well, but its problems
// (no token, a bad broker URI, …) are not reported.
func LoadWithoutBroker(ctx context.Context, lookup envconfig.Lookuper) (*Config, error) {
	return load(ctx, lookup, false)
}

func load(ctx context.Context, lookup envconfig.Lookuper, checkBroker bool) (*Config, error) {
	var c Config
	var problems []error
	brokerProblems, unreadable := read(ctx, lookup, &c.Broker)
	c.Broker.unreadable = unreadable
	if checkBroker {
		problems = append(append(problems, brokerProblems...), c.Broker.Validate()...)
	}
	logProblems, _ := read(ctx, lookup, &c.Log)
	problems = append(append(problems, logProblems...), c.Log.Validate()...)
	poolProblems, _ := read(ctx, lookup, &c.Pool)
	problems = append(append(problems, poolProblems...), c.Pool.Validate()...)
	limitsProblems, _ := read(ctx, lookup, &c.Limits)
	problems = append(append(problems, limitsProblems...), c.Limits.Validate()...)
	packagesProblems, _ := read(ctx, lookup, &c.Packages)
	problems = append(append(problems, packagesProblems...), c.Packages.Validate()...)
	return &c, errors.Join(problems...)
}

// read fills one section from lookup and returns what could not be read:
// values that do not parse (each left at its default) and _FILEs that
// could not be read, whose variables unreadable names.
func read[S any](ctx context.Context, lookup envconfig.Lookuper, section *S) (problems []error, unreadable map[string]bool) {
	skip := map[string]bool{}
	for {
		files := &fileLookuper{env: lookup}
		var s S
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &s, Lookuper: skipping(files, skip)})
		*section = s
		if err == nil {
			return append(problems, files.errs...), files.failed
		}
		// go-envconfig stops at the first bad value ("Field: reason"):
		// note it, set that variable aside, and go on to find the rest.
		field, reason, _ := strings.Cut(err.Error(), ": ")
		name := envName(reflect.TypeFor[S](), field)
		if name == "" || skip[name] {
			return append(problems, err), files.failed
		}
		skip[name] = true
		problems = append(problems, fmt.Errorf("Environment variable %s %s", name, reason))
	}
}

// Variables is every variable the configuration reads, in the order of
// its sections' fields (each may also be given as NAME_FILE).
func Variables() []string {
	var names []string
	sections := reflect.TypeFor[Config]()
	for i := range sections.NumField() {
		section := sections.Field(i).Type
		for j := range section.NumField() {
			if name := envName(section, section.Field(j).Name); name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}

// envName maps a section's field name to its variable.
func envName(section reflect.Type, field string) string {
	f, ok := section.FieldByName(field)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return strings.TrimSpace(name)
}

// fileLookuper resolves NAME from the environment, else from the file
// named by NAME_FILE (trimmed), as n8n's runner and launcher do.
type fileLookuper struct {
	env    envconfig.Lookuper
	errs   []error
	failed map[string]bool // keys whose file could not be read
}

func (l *fileLookuper) Lookup(key string) (string, bool) {
	if v, ok := l.env.Lookup(key); ok {
		return v, true
	}
	path, ok := l.env.Lookup(key + "_FILE")
	if !ok || path == "" {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("Failed to read %s_FILE from file: %w", key, err))
		if l.failed == nil {
			l.failed = map[string]bool{}
		}
		l.failed[key] = true
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// skipping hides the variables in skip, so that their defaults apply while
// the rest of the configuration is checked.
func skipping(l envconfig.Lookuper, skip map[string]bool) envconfig.Lookuper {
	return envconfig.LookuperFunc(func(key string) (string, bool) {
		if skip[key] {
			return "", false
		}
		return l.Lookup(key)
	})
}
