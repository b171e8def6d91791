// Package wheeltest builds small Python wheels for tests: no package index
// is reachable where pyrunner is tested, and a wheel is only a zip with
// its metadata (METADATA, WHEEL, RECORD) beside the code.
package wheeltest

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Wheel describes one pure-Python distribution.
type Wheel struct {
	// Name is the distribution name, Version its version.
	Name, Version string
	// Files are the installed files by path ("mypkg/__init__.py").
	Files map[string]string
	// Requires are its Requires-Dist lines ("otherdist>=1").
	Requires []string
	// TopLevel writes top_level.txt (as setuptools does); without it the
	// import names show only in RECORD (as flit and hatch do).
	TopLevel []string
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9.]+`)

// Build writes w into dir as a .whl file and returns its path.
func Build(dir string, w Wheel) (string, error) {
	dist := unsafe.ReplaceAllString(w.Name, "_")
	info := fmt.Sprintf("%s-%s.dist-info", dist, w.Version)
	files := map[string]string{}
	for p, content := range w.Files {
		files[p] = content
	}
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", w.Name, w.Version)
	for _, r := range w.Requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	files[info+"/METADATA"] = meta
	files[info+"/WHEEL"] = "Wheel-Version: 1.0\nGenerator: pyrunner-wheeltest\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	if len(w.TopLevel) > 0 {
		files[info+"/top_level.txt"] = strings.Join(w.TopLevel, "\n") + "\n"
	}
	var record strings.Builder
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		sum := sha256.Sum256([]byte(files[p]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[p]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", info)
	files[info+"/RECORD"] = record.String()
	paths = append(paths, info+"/RECORD")

	path := filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", dist, w.Version))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	zw := zip.NewWriter(f)
	for _, p := range paths {
		fw, err := zw.Create(p)
		if err != nil {
			f.Close()
			return "", err
		}
		if _, err := fw.Write([]byte(files[p])); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// Index builds every wheel into a new directory under parent, to give pip
// as its only source: PIP_NO_INDEX=1 PIP_FIND_LINKS=<dir>.
func Index(parent string, wheels ...Wheel) (string, error) {
	dir, err := os.MkdirTemp(parent, "wheels-")
	if err != nil {
		return "", err
	}
	for _, w := range wheels {
		if _, err := Build(dir, w); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// Example is the tests' usual pair: a distribution whose name differs
// from its import name (pyrunner-greeting → greeting, found through
// RECORD) that depends on another (pyrunner_util → pyrunner_util, with
// top_level.txt).
func Example() []Wheel {
	return []Wheel{
		{Name: "pyrunner-greeting", Version: "1.0", Requires: []string{"pyrunner_util>=0.1"},
			Files: map[string]string{"greeting/__init__.py": "from pyrunner_util import shout\n\ndef hello(name):\n    return shout('hello ' + name)\n"}},
		{Name: "pyrunner_util", Version: "0.2", TopLevel: []string{"pyrunner_util"},
			Files: map[string]string{"pyrunner_util/__init__.py": "def shout(s):\n    return s.upper() + '!'\n"}},
	}
}
