package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/config"
)

// configDirs is istiod's file-based config source: every *.yaml under the directories, parsed
// and validated as `kubectl apply` would (Istio's schemas), re-read when a file changes.
// Kinds that are not Istio's (a Kustomization) are ignored.
type configDirs struct {
	dirs     []string
	stamp    string
	current  map[string]config.Config
	loadedAt time.Time
}

func newConfigDirs(dirs []string) (*configDirs, error) {
	for _, dir := range dirs {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return nil, fmt.Errorf("--config-dir %s is not a directory", dir)
		}
	}
	return &configDirs{dirs: dirs, current: map[string]config.Config{}}, nil
}

func (c *configDirs) files() ([]string, string, error) {
	var files []string
	var stamp strings.Builder
	for _, dir := range c.dirs {
		matches, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, "", err
		}
		sort.Strings(matches)
		for _, file := range matches {
			info, err := os.Stat(file)
			if err != nil {
				return nil, "", err
			}
			files = append(files, file)
			fmt.Fprintf(&stamp, "%s:%d:%d;", file, info.Size(), info.ModTime().UnixNano())
		}
	}
	return files, stamp.String(), nil
}

func (c *configDirs) parse(files []string) (map[string]config.Config, error) {
	parsed := map[string]config.Config{}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		configs, _, err := crd.ParseInputs(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		for _, cfg := range configs {
			if cfg.Namespace == "" {
				return nil, fmt.Errorf("%s: %s %s has no namespace", file, cfg.GroupVersionKind.Kind, cfg.Name)
			}
			key := cfg.GroupVersionKind.String() + "/" + cfg.Namespace + "/" + cfg.Name
			if _, dup := parsed[key]; dup {
				return nil, fmt.Errorf("%s: %s defined twice", file, key)
			}
			parsed[key] = cfg
		}
	}
	return parsed, nil
}

// load reads the directories for the first time.
func (c *configDirs) load() ([]config.Config, error) {
	files, stamp, err := c.files()
	if err != nil {
		return nil, err
	}
	parsed, err := c.parse(files)
	if err != nil {
		return nil, err
	}
	c.stamp, c.current, c.loadedAt = stamp, parsed, time.Now()
	initial := make([]config.Config, 0, len(parsed))
	for _, cfg := range parsed {
		cfg.CreationTimestamp = c.loadedAt
		initial = append(initial, cfg)
	}
	logf("loaded %d resources from %s", len(initial), strings.Join(c.dirs, ", "))
	return initial, nil
}

// watch applies edits to the store (create, update, delete), which makes istiod push.
// A file that does not parse or validate is reported and the previous config stays.
func (c *configDirs) watch(store model.ConfigStore, every time.Duration, stop <-chan struct{}) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
		files, stamp, err := c.files()
		if err != nil || stamp == c.stamp {
			continue
		}
		c.stamp = stamp
		parsed, err := c.parse(files)
		if err != nil {
			logf("config edit rejected, keeping the previous config: %v", err)
			continue
		}
		for key, cfg := range parsed {
			if _, existed := c.current[key]; existed {
				cfg.CreationTimestamp = c.current[key].CreationTimestamp
				_, err = store.Update(cfg)
			} else {
				cfg.CreationTimestamp = time.Now()
				_, err = store.Create(cfg)
			}
			if err != nil {
				logf("applying %s: %v", key, err)
			}
		}
		for key, cfg := range c.current {
			if _, kept := parsed[key]; !kept {
				if err := store.Delete(cfg.GroupVersionKind, cfg.Name, cfg.Namespace, nil); err != nil {
					logf("deleting %s: %v", key, err)
				}
			}
		}
		c.current = parsed
		logf("applied a config edit: %d resources", len(parsed))
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "istiod: "+format+"\n", args...)
}
