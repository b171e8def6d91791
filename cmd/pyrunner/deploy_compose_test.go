package main

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ---- compose.yaml ---------------------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Environment composeEnv         `yaml:"environment"`
	Secrets     []composeSecretRef `yaml:"secrets"`
	DependsOn   composeNames       `yaml:"depends_on"`
	Healthcheck struct {
		Test composeCommand `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	Deploy          struct {
		Resources struct {
			Limits struct {
				Memory string `yaml:"memory"`
			} `yaml:"limits"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yamlDocuments(t, filepath.Join(deployRoot, "deploy", "compose.yaml"))[0].Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// setting: the image's ENV, then the service's environment.
func (s composeService) setting(t *testing.T, image map[string]string) pyrunnerSetting {
	env := maps.Clone(image)
	maps.Copy(env, s.Environment)
	return pyrunnerSetting{Source: "compose.yaml, service pyrunner", Names: slices.Sorted(maps.Keys(s.Environment)), Env: withSecretFiles(t, env)}
}

// composeEnv is a service's environment, written as a map or as a list of NAME=value.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			(*e)[n.Content[i].Value] = n.Content[i+1].Value
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			name, value, _ := strings.Cut(item.Value, "=")
			(*e)[name] = value
		}
	default:
		return fmt.Errorf("line %d: environment must be a map or a list", n.Line)
	}
	return nil
}

// composeNames is depends_on, written as a list or as a map of conditions.
type composeNames []string

func (c *composeNames) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			*c = append(*c, n.Content[i].Value)
		}
		return nil
	}
	return n.Decode((*[]string)(c))
}

// composeCommand is a healthcheck test: a list, or a string for the shell.
type composeCommand []string

func (c *composeCommand) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = composeCommand{"CMD-SHELL", n.Value}
		return nil
	}
	return n.Decode((*[]string)(c))
}

// composeSecretRef is a service's secret, short (a name) or long (source, target) syntax.
type composeSecretRef struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

func (r *composeSecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		r.Source, r.Target = n.Value, n.Value
		return nil
	}
	type plain composeSecretRef
	if err := n.Decode((*plain)(r)); err != nil {
		return err
	}
	if r.Target == "" {
		r.Target = r.Source
	}
	return nil
}
