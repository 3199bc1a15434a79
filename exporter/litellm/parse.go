package litellm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
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
}

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
	famCacheMisses   = "litellm_cache_misses_metric_total"
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

func wanted(name string) bool {
	switch name {
	case famStartTime, famSpend, famInputTokens, famOutputTokens, famProxyRequests, famProxyFailed, famLatency,
		famCacheHits, famCacheMisses, famSimpleCost, famSimpleRequests, famSimpleInput, famSimpleOutput, famSimpleErrors:
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
	p := &parser{reference: reference, opt: opt, snap: newSnapshot(), budgets: map[string]*Budget{}, names: intern{},
		byStatus: map[RequestKey]float64{}, total: map[string]float64{}, failed: map[string]float64{},
		simpleReq: map[string]float64{}, simpleErr: map[string]float64{}}
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

	budgets   map[string]*Budget
	byStatus  map[RequestKey]float64 // proxy requests with a status_code label
	total     map[string]float64     // proxy requests without one, by model
	failed    map[string]float64
	simpleReq map[string]float64
	simpleErr map[string]float64
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
	name := string(line[:end])
	if !belongs(name, p.family) {
		if err := p.enter(name); err != nil {
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
func belongs(name, family string) bool {
	if family == "" || !strings.HasPrefix(name, family) {
		return false
	}
	switch name[len(family):] {
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

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			if v := l.GetValue(); v != "None" {
				return v
			}
			return ""
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

func (p *parser) model(m *dto.Metric) string {
	primary, secondary := "requested_model", "model"
	if p.opt.ModelLabel == "model" {
		primary, secondary = secondary, primary
	}
	if v := label(m, primary); v != "" {
		return v
	}
	if v := label(m, secondary); v != "" {
		return v
	}
	return "unknown"
}

func (p *parser) user(m *dto.Metric) string {
	name := p.opt.UserLabel
	if name == "" {
		name = "end_user"
	}
	return label(m, name)
}

func firstOf(m *dto.Metric, names ...string) string {
	for _, n := range names {
		if v := label(m, n); v != "" {
			return v
		}
	}
	return ""
}

func (p *parser) apply(mf *dto.MetricFamily) {
	s := p.snap
	for _, m := range mf.GetMetric() {
		v := value(m)
		if math.IsNaN(v) && mf.GetName() != famLatency {
			continue
		}
		switch name := mf.GetName(); name {
		case famStartTime:
			s.StartTime = v
		case famSpend:
			s.Spend[SpendKey{Model: p.model(m), User: p.user(m), Team: firstOf(m, "team_alias", "team"),
				Key: label(m, "api_key_alias")}] += v
		case famInputTokens, famOutputTokens:
			dir := "input"
			if name == famOutputTokens {
				dir = "output"
			}
			s.Tokens[TokenKey{Model: p.model(m), User: p.user(m), Direction: dir}] += v
		case famProxyRequests:
			if code := label(m, "status_code"); code != "" {
				p.byStatus[RequestKey{Model: p.model(m), Status: statusClass(code)}] += v
			} else {
				p.total[p.model(m)] += v
			}
		case famProxyFailed:
			p.failed[p.model(m)] += v
		case famLatency:
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			agg := s.Latency[p.model(m)]
			if agg == nil {
				agg = &Histogram{Buckets: map[float64]float64{}}
				s.Latency[p.model(m)] = agg
			}
			for _, b := range h.GetBucket() {
				agg.Buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
			agg.Count += float64(h.GetSampleCount())
			agg.Sum += h.GetSampleSum()
		case famCacheHits:
			s.CacheHits[p.model(m)] += v
		case famCacheMisses:
			s.CacheMiss[p.model(m)] += v
		case famSimpleCost:
			s.Simplified = true
			s.Spend[SpendKey{Model: p.model(m), User: p.user(m)}] += v
		case famSimpleInput, famSimpleOutput:
			s.Simplified = true
			dir := "input"
			if name == famSimpleOutput {
				dir = "output"
			}
			s.Tokens[TokenKey{Model: p.model(m), User: p.user(m), Direction: dir}] += v
		case famSimpleRequests:
			s.Simplified = true
			p.simpleReq[p.model(m)] += v
		case famSimpleErrors:
			s.Simplified = true
			p.simpleErr[p.model(m)] += v
		default:
			bf, ok := budgetFamilies[name]
			if !ok {
				continue
			}
			var who string
			switch bf.scope {
			case "team":
				who = firstOf(m, "team_alias", "team")
			case "org":
				who = firstOf(m, "org_alias", "org_id")
			case "api_key":
				who = firstOf(m, "api_key_alias", "hashed_api_key")
			default:
				who = label(m, "user")
			}
			if who == "" {
				continue
			}
			b := p.budgets[bf.scope+"\x00"+who]
			if b == nil {
				b = &Budget{Scope: bf.scope, Name: who, Remaining: math.NaN(), Max: math.NaN(), HoursToReset: math.NaN()}
				p.budgets[bf.scope+"\x00"+who] = b
			}
			if math.IsInf(v, 0) {
				v = math.NaN() // no budget set
			}
			switch bf.field {
			case "remaining":
				b.Remaining = v
			case "max":
				b.Max = v
			default:
				b.HoursToReset = v
			}
		}
	}
}

func statusClass(code string) string {
	if n, err := strconv.Atoi(code); err == nil && n >= 200 && n < 400 {
		return "success"
	}
	return "failure"
}

// finish turns the request counts into success and failure per model.
func (p *parser) finish() {
	s := p.snap
	for k, v := range p.byStatus {
		s.Requests[k] += v
	}
	for model, total := range p.total {
		failed := min(p.failed[model], total)
		s.Requests[RequestKey{Model: model, Status: "success"}] += total - failed
		s.Requests[RequestKey{Model: model, Status: "failure"}] += failed
	}
	for model, total := range p.simpleReq {
		failed := min(p.simpleErr[model], total)
		s.Requests[RequestKey{Model: model, Status: "success"}] += total - failed
		s.Requests[RequestKey{Model: model, Status: "failure"}] += failed
	}
	for _, b := range p.budgets {
		s.Budgets = append(s.Budgets, *b)
	}
	sort.Slice(s.Budgets, func(i, j int) bool {
		if s.Budgets[i].Scope != s.Budgets[j].Scope {
			return s.Budgets[i].Scope < s.Budgets[j].Scope
		}
		return s.Budgets[i].Name < s.Budgets[j].Name
	})
}
