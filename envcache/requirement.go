package envcache

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Requirement is one dependency in PEP 508 form: a distribution name with
// optional extras, version specifiers or a URL, and an environment marker.
type Requirement struct {
	// Name is the distribution name normalised as PEP 503 says (lower
	// case, runs of "-", "_" and "." as one "-"): what pip and the
	// allowlist compare.
	Name string
	// Spec is the requirement as pip takes it, with the name normalised
	// and spaces removed outside the marker.
	Spec string
}

func (r Requirement) String() string { return r.Spec }

var (
	reqName   = regexp.MustCompile(`^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*`)
	reqExtras = regexp.MustCompile(`^\[\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\s*,\s*[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)*)?\s*\]\s*`)
	// One version clause: an operator and a version (with a trailing .*
	// for == and !=), as PEP 440 writes them.
	reqClause  = regexp.MustCompile(`^\s*(~=|===|==|!=|<=|>=|<|>)\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*(?:\.\*)?)\s*$`)
	normalizer = regexp.MustCompile(`[-_.]+`)
)

// NormalizeName is a distribution name as PEP 503 compares them.
func NormalizeName(name string) string {
	return normalizer.ReplaceAllString(strings.ToLower(name), "-")
}

// ParseRequirement checks one requirement string (PEP 508: name, extras,
// version specifiers or "@ URL", "; marker") and normalises it.
func ParseRequirement(s string) (Requirement, error) {
	rest := strings.TrimSpace(s)
	if rest == "" {
		return Requirement{}, errors.New("empty")
	}
	m := reqName.FindStringSubmatch(rest)
	if m == nil {
		return Requirement{}, errors.New("it does not start with a distribution name")
	}
	name := NormalizeName(m[1])
	rest = rest[len(m[0]):]
	spec := name
	if strings.HasPrefix(rest, "[") {
		e := reqExtras.FindStringSubmatch(rest)
		if e == nil {
			return Requirement{}, errors.New("malformed extras")
		}
		var extras []string
		for _, x := range strings.Split(e[1], ",") {
			if x = strings.TrimSpace(x); x != "" {
				extras = append(extras, NormalizeName(x))
			}
		}
		sort.Strings(extras)
		spec += "[" + strings.Join(extras, ",") + "]"
		rest = rest[len(e[0]):]
	}
	versionPart, marker, hasMarker := strings.Cut(rest, ";")
	versionPart = strings.TrimSpace(versionPart)
	switch {
	case strings.HasPrefix(versionPart, "@"):
		url := strings.TrimSpace(versionPart[1:])
		if url == "" || strings.ContainsAny(url, " \t") || !strings.Contains(url, "://") {
			return Requirement{}, fmt.Errorf("malformed URL %q", url)
		}
		spec += " @ " + url
	case versionPart != "":
		v := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(versionPart, "("), ")"))
		if err := checkSpecifiers(v); err != nil {
			return Requirement{}, err
		}
		spec += strings.ReplaceAll(v, " ", "")
	}
	if hasMarker {
		marker = strings.TrimSpace(marker)
		if marker == "" {
			return Requirement{}, errors.New("empty environment marker after ';'")
		}
		spec += "; " + marker
	}
	return Requirement{Name: name, Spec: spec}, nil
}

// checkSpecifiers checks a comma-separated list of PEP 440 version
// clauses such as ">=2,<3".
func checkSpecifiers(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty version specifier")
	}
	for _, clause := range strings.Split(s, ",") {
		if !reqClause.MatchString(clause) {
			return fmt.Errorf("malformed version specifier %q", strings.TrimSpace(clause))
		}
	}
	return nil
}

// ParseRequirementList reads requirements as N8N_PYTHON_REQUIREMENTS gives
// them (comma- or newline-separated) or as a requirements file does (one
// per line, "#" comments). Options lines (-r, --index-url, …) are refused:
// pip's own settings (PIP_INDEX_URL, pip.conf) say where packages come from.
func ParseRequirementList(text string) ([]Requirement, error) {
	var reqs []Requirement
	var errs []error
	for i, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, " #")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, item := range splitOutsideBrackets(line) {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if strings.HasPrefix(item, "-") {
				errs = append(errs, fmt.Errorf("line %d: %q: options are not taken here; set pip's own (PIP_INDEX_URL, PIP_FIND_LINKS, pip.conf)", i+1, item))
				continue
			}
			r, err := ParseRequirement(item)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %q is not a valid requirement: %v", i+1, item, err))
				continue
			}
			reqs = append(reqs, r)
		}
	}
	return reqs, errors.Join(errs...)
}

// splitOutsideBrackets splits a line on the commas that separate
// requirements, not those inside extras ("pkg[a,b]") nor those between
// version clauses ("pkg>=1,<2"): a comma separates requirements when what
// follows starts a new name.
func splitOutsideBrackets(line string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range line {
		switch c {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case ',':
			if depth > 0 {
				continue
			}
			next := strings.TrimSpace(line[i+1:])
			if next != "" && !strings.ContainsAny(next[:1], "<>=!~") {
				parts = append(parts, line[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, line[start:])
}

// Key is a stable text for a set of requirements: normalised, sorted,
// duplicates dropped.
func requirementsKey(reqs []Requirement) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range reqs {
		if !seen[r.Spec] {
			seen[r.Spec] = true
			out = append(out, r.Spec)
		}
	}
	sort.Strings(out)
	return out
}

// SatisfiesPython reports whether a Python version meets a PEP 440
// specifier list (PEP 723's requires-python, say ">=3.10,<3.13"). Release
// numbers only: pre-releases and local versions are not compared.
func SatisfiesPython(spec string, version [3]int) (bool, error) {
	if err := checkSpecifiers(spec); err != nil {
		return false, err
	}
	for _, clause := range strings.Split(spec, ",") {
		m := reqClause.FindStringSubmatch(clause)
		op, v := m[1], m[2]
		wildcard := strings.HasSuffix(v, ".*")
		want, err := releaseOf(strings.TrimSuffix(v, ".*"))
		if err != nil {
			return false, err
		}
		have := version[:]
		cmp := compareRelease(have, want)
		var ok bool
		switch op {
		case "==", "===":
			ok = cmp == 0
			if wildcard {
				ok = prefixEqual(have, want)
			}
		case "!=":
			ok = cmp != 0
			if wildcard {
				ok = !prefixEqual(have, want)
			}
		case ">=":
			ok = cmp >= 0
		case "<=":
			ok = cmp <= 0
		case ">":
			ok = cmp > 0
		case "<":
			ok = cmp < 0
		case "~=":
			// ~=3.10 means >=3.10, ==3.*
			ok = cmp >= 0 && len(want) >= 2 && prefixEqual(have, want[:len(want)-1])
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func releaseOf(v string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(v, ".") {
		n := 0
		if part == "" {
			return nil, fmt.Errorf("malformed version %q", v)
		}
		for _, c := range part {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("only release versions are compared, got %q", v)
			}
			n = n*10 + int(c-'0')
		}
		out = append(out, n)
	}
	return out, nil
}

// compareRelease compares release numbers, missing parts as 0.
func compareRelease(a, b []int) int {
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// prefixEqual: a starts with every part of prefix.
func prefixEqual(a, prefix []int) bool {
	for i, p := range prefix {
		if i >= len(a) || a[i] != p {
			return false
		}
	}
	return true
}
