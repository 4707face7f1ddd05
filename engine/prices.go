package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// PriceBook holds model prices read from the bundle's data
// (data.data.catalog.models[m].prices), with effective dates.
type PriceBook struct {
	models map[string][]price
}

// price is one dated entry, in pico-dollars per token (= micro-dollars per
// million tokens), so that costs are exact integers even for published
// prices such as 0.00875 $/M.
type price struct {
	effective             time.Time
	input, cached, output int64
}

// Usage is token usage to price.
type Usage struct {
	PromptTokens     int64
	CachedTokens     int64
	CompletionTokens int64
}

// CostMicros returns the cost of usage on model at time at, in USD
// micro-dollars, and whether the model has a price then.
func (pb *PriceBook) CostMicros(model string, at time.Time, u Usage) (int64, bool) {
	if pb == nil {
		return 0, false
	}
	ps := pb.models[model]
	i := sort.Search(len(ps), func(i int) bool { return ps[i].effective.After(at) }) - 1
	if i < 0 {
		return 0, false
	}
	p := ps[i]
	uncached := max(u.PromptTokens-u.CachedTokens, 0)
	picos := uncached*p.input + u.CachedTokens*p.cached + u.CompletionTokens*p.output
	return (picos + 500_000) / 1_000_000, true
}

type catalogData struct {
	Models map[string]struct {
		Prices []struct {
			Effective   string  `json:"effective"`
			Input       float64 `json:"input"`
			CachedInput float64 `json:"cached_input"`
			Output      float64 `json:"output"`
		} `json:"prices"`
	} `json:"models"`
}

// newPriceBook reads the catalog from bundle data; no catalog is no prices.
func newPriceBook(data map[string]any) (*PriceBook, error) {
	pb := &PriceBook{models: map[string][]price{}}
	root, _ := data["data"].(map[string]any)
	cat, ok := root["catalog"]
	if !ok {
		return pb, nil
	}
	raw, err := json.Marshal(cat)
	if err != nil {
		return nil, fmt.Errorf("data.data.catalog: %w", err)
	}
	var c catalogData
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("data.data.catalog: %w", err)
	}
	for name, m := range c.Models {
		for i, p := range m.Prices {
			eff, err := time.Parse(time.DateOnly, p.Effective)
			if err != nil {
				return nil, fmt.Errorf("data.data.catalog.models[%q].prices[%d].effective: %q is not a date (want YYYY-MM-DD)", name, i, p.Effective)
			}
			if p.Input < 0 || p.CachedInput < 0 || p.Output < 0 {
				return nil, fmt.Errorf("data.data.catalog.models[%q].prices[%d]: negative price", name, i)
			}
			pb.models[name] = append(pb.models[name], price{
				effective: eff,
				input:     perMillionToPicos(p.Input),
				cached:    perMillionToPicos(p.CachedInput),
				output:    perMillionToPicos(p.Output),
			})
		}
		sort.Slice(pb.models[name], func(i, j int) bool {
			return pb.models[name][i].effective.Before(pb.models[name][j].effective)
		})
	}
	return pb, nil
}

// perMillionToPicos converts USD per million tokens to pico-dollars per token.
func perMillionToPicos(usdPerMillion float64) int64 {
	return int64(math.Round(usdPerMillion * 1e6))
}
