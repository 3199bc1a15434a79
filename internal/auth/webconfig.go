package auth

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// CheckWebConfig refuses basic_auth_users in the exporter-toolkit web
// configuration together with OIDC: both are read from the Authorization
// header, so no request could carry both. With OIDC, protect /metrics with
// TLS client certificates (tls_server_config.client_auth_type) instead.
func CheckWebConfig(webConfigFile string, c Config) error {
	if webConfigFile == "" || !c.Enabled() {
		return nil
	}
	data, err := os.ReadFile(webConfigFile)
	if err != nil {
		return err
	}
	var wc struct {
		BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(data, &wc); err != nil {
		return fmt.Errorf("%s: %w", webConfigFile, err)
	}
	if len(wc.BasicAuthUsers) > 0 {
		return fmt.Errorf("%s: basic_auth_users cannot be combined with auth.oidc: both use the Authorization header; "+
			"protect /metrics with TLS client certificates (tls_server_config.client_auth_type) instead", webConfigFile)
	}
	return nil
}
