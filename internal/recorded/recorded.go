// Package recorded names the recording rules that sum an exporter counter
// without some of its labels (prometheus/rules/usage-recording.yml, group
// usage-sums): the optimizer reads them instead of the raw series, and the
// backfill writes their history. A test holds this table to the rule file.
package recorded

// Sum is one such rule: Record = sum without (Without) (Metric), keeping
// Labels (and instance and job).
type Sum struct {
	Metric, Record string
	Without        []string
	Labels         []string
}

// Sums are the rules of the usage-sums group.
var Sums = []Sum{
	{"usage_requests_total", "api_service_code:usage_requests_total:sum", []string{"route", "method"}, []string{"api_service", "code"}},
	{"usage_request_duration_seconds_bucket", "api_service_le:usage_request_duration_seconds_bucket:sum", []string{"route"}, []string{"api_service", "le"}},
	{"usage_request_duration_seconds_sum", "api_service:usage_request_duration_seconds_sum:sum", []string{"route"}, []string{"api_service"}},
	{"usage_request_duration_seconds_count", "api_service:usage_request_duration_seconds_count:sum", []string{"route"}, []string{"api_service"}},
	{"usage_user_requests_total", "user_tier:usage_user_requests_total:sum", []string{"api_service"}, []string{"user", "tier"}},
}
