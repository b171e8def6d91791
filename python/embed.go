package python

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sort"
)

// Runtime holds the pyrunner_runtime package (not its tests, nor any
// __pycache__ left by running them).
//
//go:embed runtime/pyrunner_runtime/*.py runtime/pyrunner_runtime/*.json
var Runtime embed.FS

// RuntimeFS is the tree to put on sys.path: it contains pyrunner_runtime/.
func RuntimeFS() fs.FS {
	sub, err := fs.Sub(Runtime, "runtime")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// RuntimeHash identifies the embedded runtime's content, so caches written
// by one build of pyrunner are never used by another.
func RuntimeHash() string {
	h := sha256.New()
	var names []string
	_ = fs.WalkDir(RuntimeFS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		b, _ := fs.ReadFile(RuntimeFS(), n)
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
