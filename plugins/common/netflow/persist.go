package netflow

import (
	"encoding/json"
	"errors"
	"fmt"
)

// templateFileFormat identifies the template file format; the version
// changes when the layout does.
const (
	templateFileFormat  = "flowline-netflow-templates"
	templateFileVersion = 1
)

// ErrTemplateFile is wrapped by the errors UnmarshalTemplates returns.
var ErrTemplateFile = errors.New("invalid template file")

type templateFile struct {
	Format    string        `json:"format"`
	Version   int           `json:"version"`
	Templates []TemplateSet `json:"templates"`
}

// MarshalTemplates encodes templates in the versioned template file format
// (compact JSON: a template flood of 100,000 templates must not cost an
// indented copy), for persistence and for sharing with peers.
func MarshalTemplates(sets []TemplateSet) ([]byte, error) {
	if sets == nil {
		sets = []TemplateSet{}
	}
	data, err := json.Marshal(templateFile{Format: templateFileFormat, Version: templateFileVersion, Templates: sets})
	if err != nil {
		return nil, fmt.Errorf("marshal templates: %w", err)
	}
	return data, nil
}

// UnmarshalTemplates decodes a template file written by MarshalTemplates. A
// corrupt file, an unknown format or version, or an invalid template returns
// an error wrapping ErrTemplateFile.
func UnmarshalTemplates(data []byte) ([]TemplateSet, error) {
	var f templateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("unmarshal templates: %w: %w", ErrTemplateFile, err)
	}
	if f.Format != templateFileFormat {
		return nil, fmt.Errorf("unmarshal templates: format %q, want %q: %w", f.Format, templateFileFormat, ErrTemplateFile)
	}
	if f.Version != templateFileVersion {
		return nil, fmt.Errorf("unmarshal templates: file version %d, this build reads version %d: %w", f.Version, templateFileVersion, ErrTemplateFile)
	}
	for i, ts := range f.Templates {
		switch {
		case ts.Version != 9 && ts.Version != 10:
			return nil, fmt.Errorf("unmarshal templates: template %d (id %d): export version %d: %w", i, ts.ID, ts.Version, ErrTemplateFile)
		case !ts.Exporter.IsValid():
			return nil, fmt.Errorf("unmarshal templates: template %d (id %d): no exporter address: %w", i, ts.ID, ErrTemplateFile)
		case ts.Withdrawn:
		case ts.ID < 256:
			return nil, fmt.Errorf("unmarshal templates: template %d: id %d < 256: %w", i, ts.ID, ErrTemplateFile)
		case len(ts.Fields) == 0:
			return nil, fmt.Errorf("unmarshal templates: template %d (id %d): no fields: %w", i, ts.ID, ErrTemplateFile)
		case int(ts.ScopeFieldCount) > len(ts.Fields):
			return nil, fmt.Errorf("unmarshal templates: template %d (id %d): scope field count %d > %d fields: %w", i, ts.ID, ts.ScopeFieldCount, len(ts.Fields), ErrTemplateFile)
		}
	}
	return f.Templates, nil
}
