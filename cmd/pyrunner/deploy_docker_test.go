package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ---- Dockerfile and .dockerignore -----------------------------------------------------------

// dockerInstruction is one instruction, continuation lines joined; Commented when a comment
// line stands right above it.
type dockerInstruction struct {
	Cmd, Args string
	Commented bool
}

func dockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	f, err := os.Open(filepath.Join(deployRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out            []dockerInstruction
		cur            strings.Builder
		continuing     bool
		afterComment   bool
		startCommented bool
	)
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		isComment := strings.HasPrefix(line, "#")
		if !continuing {
			if line == "" || isComment {
				afterComment = isComment
				continue
			}
			startCommented = afterComment
		} else if isComment || line == "" {
			continue // comments inside a continued instruction are dropped, as Docker does
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continuing = true
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Commented: startCommented})
		cur.Reset()
		continuing, afterComment = false, false
	}
	if len(out) == 0 {
		t.Fatal("the Dockerfile holds no instruction")
	}
	return out
}

// dockerfileEnv is the ENV of the Dockerfile's last stage: the image's defaults.
func dockerfileEnv(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range dockerfile(t) {
		switch in.Cmd {
		case "FROM":
			clear(env)
		case "ENV":
			fields := strings.Fields(in.Args)
			if !strings.Contains(fields[0], "=") { // the legacy form: ENV NAME value
				env[fields[0]] = strings.TrimSpace(strings.TrimPrefix(in.Args, fields[0]))
				continue
			}
			for _, f := range fields {
				name, value, _ := strings.Cut(f, "=")
				if unquoted, err := strconv.Unquote(value); err == nil {
					value = unquoted
				}
				env[name] = value
			}
		}
	}
	if len(env) == 0 {
		t.Fatal("the Dockerfile's runtime stage sets no ENV")
	}
	return env
}

// execForm parses an instruction's JSON (exec) form; nil for the shell form.
func execForm(args string) []string {
	var out []string
	if json.Unmarshal([]byte(strings.TrimSpace(args)), &out) != nil {
		return nil
	}
	return out
}

// dockerignoreExcludes: pattern (Docker's syntax: path.Match per segment, ** for any number of
// directories) matches p or one of its parent directories.
func dockerignoreExcludes(pattern, p string) bool {
	if strings.HasPrefix(pattern, "!") {
		return false
	}
	pat := strings.Split(strings.TrimPrefix(path.Clean(pattern), "/"), "/")
	parts := strings.Split(p, "/")
	for n := 1; n <= len(parts); n++ {
		if segmentsMatch(pat, parts[:n]) {
			return true
		}
	}
	return false
}

func segmentsMatch(pat, parts []string) bool {
	if len(pat) == 0 {
		return len(parts) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(parts); i++ {
			if segmentsMatch(pat[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 {
		return false
	}
	ok, _ := path.Match(pat[0], parts[0])
	return ok && segmentsMatch(pat[1:], parts[1:])
}
