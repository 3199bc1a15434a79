package litellm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Options choose which LiteLLM labels become usage-exporter's model and user.
type Options struct {
	// ModelLabel is requested_model (the model group clients ask for) or
	// model (the provider's model name).
	ModelLabel string
	// UserLabel is end_user (the request's user field), user (LiteLLM's
	// internal user), api_key_alias or team_alias.
	UserLabel string
	// IgnoreRoutes are routes whose requests are not model calls: LiteLLM
	// 1.72 counts the scrapes of its own /metrics as failed requests.
	IgnoreRoutes []string
}

// DefaultIgnoredRoutes are LiteLLM's metrics routes.
var DefaultIgnoredRoutes = []string{"/metrics", "/metrics/"}

// Names of the families Parse reads; everything else is skipped unparsed.
const (
	famStartTime     = "process_start_time_seconds"
	famSpend         = "litellm_spend_metric_total"
	famInputTokens   = "litellm_input_tokens_metric_total"
	famOutputTokens  = "litellm_output_tokens_metric_total"
	famProxyRequests = "litellm_proxy_total_requests_metric_total"
	famProxyFailed   = "litellm_proxy_failed_requests_metric_total"
	famLatency       = "litellm_request_total_latency_metric"
	famCacheHits     = "litellm_cache_hits_metric_total"
	// Token details (LiteLLM 1.9x): parts of the input and output totals.
	famInputCached        = "litellm_input_cached_tokens_metric_total"
	famInputCacheCreation = "litellm_input_cache_creation_tokens_metric_total"
	famOutputReasoning    = "litellm_output_reasoning_tokens_metric_total"
	famCacheMisses        = "litellm_cache_misses_metric_total"
	// The older simplified set.
	famSimpleCost     = "litellm_total_cost"
	famSimpleRequests = "litellm_requests_total"
	famSimpleInput    = "litellm_input_tokens_total"
	famSimpleOutput   = "litellm_output_tokens_total"
	famSimpleErrors   = "litellm_errors_total"
)

type budgetField struct{ scope, field string }

var budgetFamilies = map[string]budgetField{
	"litellm_remaining_team_budget_metric":          {"team", "remaining"},
	"litellm_team_max_budget_metric":                {"team", "max"},
	"litellm_team_budget_remaining_hours_metric":    {"team", "hours"},
	"litellm_remaining_org_budget_metric":           {"org", "remaining"},
	"litellm_org_max_budget_metric":                 {"org", "max"},
	"litellm_org_budget_remaining_hours_metric":     {"org", "hours"},
	"litellm_remaining_api_key_budget_metric":       {"api_key", "remaining"},
	"litellm_api_key_max_budget_metric":             {"api_key", "max"},
	"litellm_api_key_budget_remaining_hours_metric": {"api_key", "hours"},
	"litellm_remaining_user_budget_metric":          {"user", "remaining"},
	"litellm_user_max_budget_metric":                {"user", "max"},
	"litellm_user_budget_remaining_hours_metric":    {"user", "hours"},
}

// countedFamilies are the families whose series are counted, by kind.
var countedFamilies = map[string]Kind{
	famSpend: Spend, famInputTokens: InputTokens, famOutputTokens: OutputTokens,
	famInputCached: CacheReadTokens, famInputCacheCreation: CacheWriteTokens, famOutputReasoning: ReasoningTokens,
	famProxyRequests: Requests, famProxyFailed: FailedRequests,
	famSimpleCost: Spend, famSimpleRequests: Requests, famSimpleInput: InputTokens, famSimpleOutput: OutputTokens,
	famSimpleErrors: FailedRequests,
}

func simplified(family string) bool {
	switch family {
	case famSimpleCost, famSimpleRequests, famSimpleInput, famSimpleOutput, famSimpleErrors:
		return true
	}
	return false
}

func wanted(name string) bool {
	switch name {
	case famStartTime, famLatency, famCacheHits, famCacheMisses:
		return true
	}
	if _, ok := countedFamilies[name]; ok {
		return true
	}
	_, ok := budgetFamilies[name]
	return ok
}

// chunkLines bounds how many sample lines expfmt parses at once.
const chunkLines = 20000

// maxLine bounds one exposition line.
const maxLine = 1 << 20

// Parse reads a Prometheus text exposition from LiteLLM. It streams: the
// families it does not use are skipped line by line, and the others are
// parsed by expfmt in chunks of lines, so memory stays bounded whatever
// LiteLLM's cardinality.
func Parse(r io.Reader, opt Options) (*Snapshot, error) {
	return parse(r, opt, false)
}

// parse reads with the bulk scanner, or with expfmt alone when reference
// is set (the tests compare the two).
func parse(r io.Reader, opt Options, reference bool) (*Snapshot, error) {
	p := newParser(opt, reference)
	br := bufio.NewReaderSize(r, 64<<10)
	var last byte
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			last = line[len(line)-1]
			if perr := p.line(line); perr != nil {
				return nil, perr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if err := p.flush(); err != nil {
		return nil, err
	}
	if last != '\n' && last != 0 {
		return nil, errors.New("response does not end with a newline: truncated")
	}
	if !p.sawLiteLLM {
		return nil, errors.New("no LiteLLM metrics in the response")
	}
	p.finish()
	return p.snap, nil
}

func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	buf := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(buf) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		line, err = br.ReadSlice('\n')
		buf = append(buf, line...)
	}
	return buf, err
}

type parser struct {
	opt        Options
	snap       *Snapshot
	sawLiteLLM bool

	family    string // current family
	keep      bool   // whether it is wanted
	histogram bool   // declared a histogram by its TYPE line
	header    []byte // its HELP and TYPE lines
	chunk     bytes.Buffer
	lines     int

	sc        scanner
	names     intern
	reference bool // parse every family with expfmt

	budgets                           map[string]*Budget
	index                             map[Labels]int32 // the snapshot's labels table
	modelLabel, otherLabel, userLabel string
}

func newParser(opt Options, reference bool) *parser {
	p := &parser{reference: reference, opt: opt, snap: newSnapshot(), budgets: map[string]*Budget{}, names: intern{},
		index: map[Labels]int32{}, modelLabel: "requested_model", otherLabel: "model", userLabel: opt.UserLabel}
	if opt.ModelLabel == "model" {
		p.modelLabel, p.otherLabel = p.otherLabel, p.modelLabel
	}
	if p.userLabel == "" {
		p.userLabel = "end_user"
	}
	if p.opt.IgnoreRoutes == nil {
		p.opt.IgnoreRoutes = DefaultIgnoredRoutes
	}
	return p
}

func (p *parser) line(line []byte) error {
	if line[0] == '#' {
		f := bytes.Fields(line)
		if len(f) >= 3 && (string(f[1]) == "HELP" || string(f[1]) == "TYPE") {
			if err := p.enter(string(f[2])); err != nil {
				return err
			}
			if string(f[1]) == "TYPE" && len(f) >= 4 {
				p.histogram = strings.EqualFold(string(f[3]), "histogram")
			}
			if p.keep {
				p.header = append(p.header, line...)
				if line[len(line)-1] != '\n' {
					p.header = append(p.header, '\n')
				}
			}
		}
		return nil
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	end := bytes.IndexAny(line, "{ \t")
	if end < 0 {
		end = len(line)
	}
	name := line[:end]
	if !belongs(name, p.family) {
		if err := p.enter(string(name)); err != nil {
			return err
		}
	}
	if !p.keep {
		return nil
	}
	if bulkFamilies[p.family] && !p.reference {
		if err := p.bulk(line); err != nil {
			return fmt.Errorf("parsing %s: %w: %.200q", p.family, err, line)
		}
		return nil
	}
	p.chunk.Write(line)
	if line[len(line)-1] != '\n' {
		p.chunk.WriteByte('\n')
	}
	if p.lines++; p.lines >= chunkLines {
		return p.flush()
	}
	return nil
}

// belongs reports whether a sample named name is part of family.
func belongs(name []byte, family string) bool {
	if family == "" || !bytes.HasPrefix(name, []byte(family)) {
		return false
	}
	switch string(name[len(family):]) {
	case "", "_bucket", "_sum", "_count", "_total", "_created":
		return true
	}
	return false
}

func (p *parser) enter(name string) error {
	if name == p.family {
		return nil
	}
	if err := p.flush(); err != nil {
		return err
	}
	p.family, p.header, p.histogram = name, p.header[:0], false
	p.keep = wanted(name)
	if strings.HasPrefix(name, "litellm_") {
		p.sawLiteLLM = true
	}
	return nil
}

// flush parses the buffered lines of the current family with expfmt.
func (p *parser) flush() error {
	if p.chunk.Len() == 0 {
		return nil
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(io.MultiReader(bytes.NewReader(p.header), &p.chunk))
	p.chunk.Reset()
	p.lines = 0
	if err != nil {
		return fmt.Errorf("parsing %s: %w", p.family, err)
	}
	for _, mf := range fams {
		p.apply(mf)
	}
	return nil
}
