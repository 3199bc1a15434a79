package auth

import (
	"fmt"
	"os"

	"github.com/prometheus/exporter-toolkit/web"
	"gopkg.in/yaml.v3"
)

// CheckWebConfig validates the exporter-toolkit web configuration of the
// flags (none is fine), and refuses basic_auth_users in it together with
// OIDC: both are read from the Authorization header, so no request could
// carry both. With OIDC, protect /metrics with TLS client certificates
// (tls_server_config.client_auth_type) instead.
func CheckWebConfig(flags *web.FlagConfig, c Config) error {
	if flags == nil || flags.WebConfigFile == nil || *flags.WebConfigFile == "" {
		return nil
	}
	file := *flags.WebConfigFile
	if err := web.Validate(file); err != nil {
		return fmt.Errorf("web configuration %s: %w", file, err)
	}
	if !c.Enabled() {
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var wc struct {
		BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(data, &wc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(wc.BasicAuthUsers) > 0 {
		return fmt.Errorf("%s: basic_auth_users cannot be combined with auth.oidc: both use the Authorization header; "+
			"protect /metrics with TLS client certificates (tls_server_config.client_auth_type) instead", file)
	}
	return nil
}
