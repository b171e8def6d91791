package main

import (
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ---- Kubernetes -----------------------------------------------------------------------------

// k8sObject is the part of a manifest these tests read; other fields are ignored.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
	InitContainers                []k8sContainer `yaml:"initContainers"`
	Containers                    []k8sContainer `yaml:"containers"`
	Volumes                       []struct {
		Name   string    `yaml:"name"`
		Secret *struct{} `yaml:"secret"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name          string   `yaml:"name"`
	Image         string   `yaml:"image"`
	Args          []string `yaml:"args"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Env           []struct {
		Name      string  `yaml:"name"`
		Value     *string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []any `yaml:"envFrom"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a container port's name
	} `yaml:"httpGet"`
}

// kubernetesObjects is every object of the manifests the Kustomization lists.
func kubernetesObjects(t *testing.T) []k8sObject {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(deployRoot, "deploy", "kubernetes", "*.yaml"))
	var objs []k8sObject
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, doc := range yamlDocuments(t, f) {
			var obj k8sObject
			if err := doc.Decode(&obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs = append(objs, obj)
		}
	}
	if len(objs) == 0 {
		t.Fatal("no Kubernetes objects under deploy/kubernetes")
	}
	return objs
}

// setting: the image's ENV, then the container's env, secret references as the placeholder.
func (c k8sContainer) setting(t *testing.T, image map[string]string) pyrunnerSetting {
	t.Helper()
	if len(c.EnvFrom) > 0 {
		t.Errorf("container %s: envFrom cannot be checked here; set pyrunner's variables one by one", c.Name)
	}
	env := maps.Clone(image)
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
		switch {
		case e.Value != nil:
			env[e.Name] = *e.Value
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = deployPlaceholderToken
		default:
			t.Errorf("container %s: %s comes from neither a value nor a Secret, so it cannot be checked here", c.Name, e.Name)
		}
	}
	return pyrunnerSetting{Source: "container " + c.Name, Names: names, Env: withSecretFiles(t, env)}
}

// envValue is the literal value of a variable, "" when unset or not literal.
func (c k8sContainer) envValue(name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.Value != nil {
			return *e.Value
		}
	}
	return ""
}

// port resolves a probe's port, a number or the name of one of the container's ports.
func (c k8sContainer) port(p any) int {
	switch p := p.(type) {
	case int:
		return p
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
		n, _ := strconv.Atoi(p)
		return n
	}
	return -1
}

// tokenFromSecret: N8N_RUNNERS_AUTH_TOKEN from a secretKeyRef, or its _FILE in a mounted
// Secret volume.
func (c k8sContainer) tokenFromSecret(pod k8sPodSpec) bool {
	for _, e := range c.Env {
		if e.Name == "N8N_RUNNERS_AUTH_TOKEN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name != "" && e.ValueFrom.SecretKeyRef.Key != ""
		}
	}
	file := c.envValue("N8N_RUNNERS_AUTH_TOKEN_FILE")
	for _, m := range c.VolumeMounts {
		if file == "" || !strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return true
			}
		}
	}
	return false
}
