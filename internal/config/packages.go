package config

import (
	"fmt"

	"github.com/pyrunner/pyrunner/envcache"
)

// Packages is the Python packages tasks may use, and the caches that keep
// what was built or compiled for them: pyrunner's own variables.
type Packages struct {
	// Requirements builds the default environment at start (pip
	// requirement specifiers, comma- or newline-separated). Given as
	// N8N_PYTHON_REQUIREMENTS_FILE, it is a requirements file, comments
	// and all.
	Requirements string `env:"N8N_PYTHON_REQUIREMENTS"`
	// Allow is what a Code node's PEP 723 block may install (distribution
	// names, n8n's list syntax; "*": anything; empty: nothing).
	Allow List `env:"N8N_PYTHON_PACKAGES_ALLOW"`

	BuildConcurrency Int    `env:"N8N_PYTHON_CACHE_BUILD_CONCURRENCY, default=2"`
	MaxEnvironments  Int    `env:"N8N_PYTHON_CACHE_MAX_ENVIRONMENTS, default=20"`
	MaxDiskMB        Int    `env:"N8N_PYTHON_CACHE_MAX_DISK_MB, default=10240"`
	EnvTTL           Millis `env:"N8N_PYTHON_CACHE_ENV_TTL, default=3600000"`
	CleanupInterval  Millis `env:"N8N_PYTHON_CACHE_CLEANUP_INTERVAL, default=60000"`

	// The compiled-code cache: entries, age, and bytes in all.
	MaxCodeSize Int    `env:"N8N_PYTHON_CACHE_MAX_CODE_SIZE, default=1000"`
	CodeTTL     Millis `env:"N8N_PYTHON_CACHE_CODE_TTL, default=1800000"`
	MaxMemory   Int    `env:"N8N_PYTHON_CACHE_MAX_MEMORY, default=1073741824"`

	defaults []envcache.Requirement
}

// Default is the default environment's requirements, read by Validate.
func (p *Packages) Default() []envcache.Requirement { return p.defaults }

// Validate checks the section, each problem naming its variable.
func (p *Packages) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	reqs, err := envcache.ParseRequirementList(p.Requirements)
	if err != nil {
		add("N8N_PYTHON_REQUIREMENTS: %v", err)
	}
	p.defaults = reqs
	for name, v := range map[string]int{
		"N8N_PYTHON_CACHE_BUILD_CONCURRENCY": int(p.BuildConcurrency), "N8N_PYTHON_CACHE_MAX_ENVIRONMENTS": int(p.MaxEnvironments),
		"N8N_PYTHON_CACHE_MAX_DISK_MB": int(p.MaxDiskMB), "N8N_PYTHON_CACHE_ENV_TTL": int(p.EnvTTL),
		"N8N_PYTHON_CACHE_CLEANUP_INTERVAL": int(p.CleanupInterval), "N8N_PYTHON_CACHE_CODE_TTL": int(p.CodeTTL),
		"N8N_PYTHON_CACHE_MAX_MEMORY": int(p.MaxMemory),
	} {
		if v < 1 {
			add("%s must be positive, got %d", name, v)
		}
	}
	if p.MaxCodeSize < 0 {
		add("N8N_PYTHON_CACHE_MAX_CODE_SIZE must be 0 (no compiled-code cache) or more, got %d", p.MaxCodeSize)
	}
	return errs
}
