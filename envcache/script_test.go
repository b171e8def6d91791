package envcache

import (
	"errors"
	"strings"
	"testing"
)

func TestParseScriptMetadata(t *testing.T) {
	valid := "# /// script\n# requires-python = \">=3.10\"\n# dependencies = [\n#   \"Pandas>=2\",\n#   \"python_dateutil\",\n# ]\n# ///\nimport pandas\nreturn []"
	meta, err := ParseScriptMetadata(valid)
	if err != nil || meta == nil {
		t.Fatalf("valid block: %+v %v", meta, err)
	}
	if meta.RequiresPython != ">=3.10" || len(meta.Dependencies) != 2 ||
		meta.Dependencies[0].Spec != "pandas>=2" || meta.Dependencies[1].Name != "python-dateutil" {
		t.Fatalf("valid block read as %+v", meta)
	}
	if meta, err := ParseScriptMetadata("return [{'json': {'a': 1}}]\n# just a comment\n"); meta != nil || err != nil {
		t.Fatalf("no block: %+v %v", meta, err)
	}
	// Another type of block is not the script's.
	if meta, err := ParseScriptMetadata("# /// other\n# x = 1\n# ///\nreturn []"); meta != nil || err != nil {
		t.Fatalf("a block of another type: %+v %v", meta, err)
	}
	empty, err := ParseScriptMetadata("# /// script\n# ///\nreturn []")
	if err != nil || empty == nil || len(empty.Dependencies) != 0 {
		t.Fatalf("an empty block: %+v %v", empty, err)
	}
}

func TestParseScriptMetadataNamesTheLineAndTheProblem(t *testing.T) {
	cases := []struct{ name, code, want string }{
		{"unterminated", "x = 1\n# /// script\n# dependencies = []\nreturn []", `line 2: the "script" block is not closed`},
		{"duplicate", "# /// script\n# dependencies = []\n# ///\n\n# /// script\n# dependencies = []\n# ///\n", `line 5: a second "script" block (the first is on line 1)`},
		{"bad toml", "# /// script\n# dependencies = [\"a\"\n# ///\n", "line 2: expected a comma"},
		{"bad requirement", "# /// script\n# requires-python = \">=3.10\"\n# dependencies = [\"pandas>=>2\"]\n# ///\n", `line 3: dependency "pandas>=>2" is not a valid requirement`},
		{"not strings", "# /// script\n# dependencies = [1]\n# ///\n", "line 2: dependencies must be an array of strings"},
		{"bad python", "# /// script\n# requires-python = \"three\"\n# ///\n", `line 2: requires-python "three"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseScriptMetadata(c.code)
			if !errors.Is(err, ErrScriptMetadata) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
		})
	}
}

func TestParseRequirement(t *testing.T) {
	good := map[string]string{
		"pandas":                           "pandas",
		"Pandas >= 2.0, < 3":               "pandas>=2.0,<3",
		"python_dateutil":                  "python-dateutil",
		"requests[socks, Security]>=2.31":  "requests[security,socks]>=2.31",
		"numpy==1.26.*":                    "numpy==1.26.*",
		"attrs ; python_version >= '3.10'": "attrs; python_version >= '3.10'",
		"pkg @ https://example.com/p.whl":  "pkg @ https://example.com/p.whl",
		"zope.interface~=6.0":              "zope-interface~=6.0",
	}
	for in, want := range good {
		r, err := ParseRequirement(in)
		if err != nil || r.Spec != want {
			t.Errorf("%q: %q %v, want %q", in, r.Spec, err, want)
		}
	}
	for _, bad := range []string{"", ">=2", "pandas>=>2", "pandas[", "pandas ==", "pandas @", "-e .", "pandas; ", "a b"} {
		if r, err := ParseRequirement(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, r.Spec)
		}
	}
}

func TestParseRequirementList(t *testing.T) {
	reqs, err := ParseRequirementList("pandas>=2,<3, numpy\nrequests[socks,security] # comment\n# a comment line\n\npython-dateutil")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reqs {
		got = append(got, r.Spec)
	}
	if strings.Join(got, " ") != "pandas>=2,<3 numpy requests[security,socks] python-dateutil" {
		t.Fatalf("read %v", got)
	}
	if _, err := ParseRequirementList("pandas\n--index-url https://x\nbad>=>1"); err == nil ||
		!strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("problems: %v", err)
	}
}

func TestSatisfiesPython(t *testing.T) {
	v := [3]int{3, 11, 2}
	for spec, want := range map[string]bool{
		">=3.10": true, ">=3.12": false, "<3.12,>=3.10": true, "==3.11.*": true, "==3.10.*": false,
		"~=3.10": true, "~=3.12": false, "!=3.11.2": false, "==3.11.2": true, ">3.11": true, "<=3.11": false,
	} {
		got, err := SatisfiesPython(spec, v)
		if err != nil || got != want {
			t.Errorf("%s for 3.11.2: %v %v, want %v", spec, got, err, want)
		}
	}
	if _, err := SatisfiesPython(">=3.10rc1", v); err == nil {
		t.Error("a pre-release compared")
	}
}
