// Package configfile decodes YAML configuration strictly, the one way both
// programs do it: over the defaults, unknown keys rejected, and every error
// naming the file, the line and the field.
package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/usage-exporter/usage-exporter/internal/fielderr"
	"gopkg.in/yaml.v3"
)

// Validator is a configuration that checks itself; its errors are
// *fielderr.Error where they concern one field.
type Validator interface {
	Validate() error
}

// Parse decodes data over v, which holds the defaults, and validates it. A
// validation error about a field the file sets is prefixed with its line.
func Parse(data []byte, v Validator) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fielderr.YAML(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fielderr.YAML(err)
	}
	if err := v.Validate(); err != nil {
		var fe *fielderr.Error
		if errors.As(err, &fe) {
			if line := fielderr.Line(&root, fe.Path); line > 0 {
				return fmt.Errorf("line %d: %w", line, err)
			}
		}
		return err
	}
	return nil
}

// Load reads the file at path and parses it; errors start with the path.
func Load(path string, v Validator) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := Parse(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
