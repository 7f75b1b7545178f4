package gateway

import (
	"reflect"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/spec"
	stagedlp "github.com/bulwarkapi/bulwark/internal/stage/dlp"
	"github.com/bulwarkapi/bulwark/internal/stage/validate"
	"github.com/bulwarkapi/bulwark/internal/stage/waf"
)

// stageSet collects, per API, the stages of one kind, in pipeline order.
type stageSet struct {
	validate map[string]pipeline.Stage
	waf      map[string]pipeline.Stage
	dataReq  map[string]pipeline.Stage
	respVal  map[string]pipeline.ResponseStage
	data     map[string]pipeline.ResponseStage
}

func newStageSet() *stageSet {
	return &stageSet{
		validate: map[string]pipeline.Stage{},
		waf:      map[string]pipeline.Stage{},
		dataReq:  map[string]pipeline.Stage{},
		respVal:  map[string]pipeline.ResponseStage{},
		data:     map[string]pipeline.ResponseStage{},
	}
}

// addInspection builds the validation, WAF and sensitive-data stages of
// one API. prev lends a WAF whose config did not change (building CRS
// takes a while).
func (g *Gateway) addInspection(set *stageSet, a config.API, doc *spec.Document, cfg *config.Config, prev *snapshot, fail func(string, error), p string) {
	if v := a.Validate; v != nil && doc != nil && (v.Requests || v.Responses) {
		req, resp, err := validate.New(validate.Options{API: a.Name, Spec: doc, Config: *v, MaxRequestBytes: int64(cfg.Limits.MaxBodyBytes)})
		if err != nil {
			fail(p+".validate", err)
		} else {
			if req != nil {
				set.validate[a.Name] = req
				if d := req.Degraded(); len(d) > 0 {
					g.logger.Warn("spec patterns use regular-expression features Go lacks; they are relaxed for validation",
						"api", a.Name, "patterns", d)
				}
			}
			if resp != nil {
				set.respVal[a.Name] = resp
			}
		}
	}
	if w := a.WAF; w != nil {
		if st, err := g.wafStage(a.Name, *w, int64(cfg.Limits.MaxBodyBytes), prev); err != nil {
			fail(p+".waf", err)
		} else {
			set.waf[a.Name] = st
		}
	}
	if d := a.Data; d != nil {
		st, err := stagedlp.New(stagedlp.Options{API: a.Name, Config: *d})
		if err != nil {
			fail(p+".data", err)
			return
		}
		set.data[a.Name] = st
		if d.Requests {
			set.dataReq[a.Name] = st
		}
	}
}

// wafStage builds an API's WAF, or reuses the previous snapshot's when its
// config is unchanged: compiling the Core Rule Set takes a while.
func (g *Gateway) wafStage(api string, c config.WAF, maxBody int64, prev *snapshot) (pipeline.Stage, error) {
	if prev != nil {
		if old, ok := prev.wafs[api]; ok && reflect.DeepEqual(old.cfg, c) {
			return old.stage, nil
		}
	}
	return waf.New(waf.Options{API: api, Config: c, Logger: g.logger, MaxBodyBytes: maxBody})
}

// stages returns the request and response stages after authentication, in
// the order of the request path (SPEC: validate, WAF; response: validate,
// sensitive data).
func (set *stageSet) stages() ([]pipeline.Stage, []pipeline.ResponseStage) {
	var req []pipeline.Stage
	var resp []pipeline.ResponseStage
	if len(set.validate) > 0 {
		req = append(req, pipeline.NewByAPI("validate", set.validate))
	}
	if len(set.waf) > 0 {
		req = append(req, pipeline.NewByAPI("waf", set.waf))
	}
	if len(set.dataReq) > 0 {
		req = append(req, pipeline.NewByAPI("data_request", set.dataReq))
	}
	if len(set.respVal) > 0 {
		resp = append(resp, pipeline.NewByAPIResponse("validate_response", set.respVal))
	}
	if len(set.data) > 0 {
		resp = append(resp, pipeline.NewByAPIResponse("data", set.data))
	}
	return req, resp
}

// wafRetireDelay is how long a WAF dropped by a reload stays usable before
// its compiled rules are released: longer than any request that started on
// the old snapshot can still be running.
const wafRetireDelay = 2 * time.Minute

// retireWAFs releases the WAFs of old that cur does not keep, after the
// requests in flight on old are done with them.
func retireWAFs(old, cur map[string]wafEntry, delay time.Duration) {
	var drop []wafEntry
	for api, w := range old {
		if c, ok := cur[api]; !ok || c.stage != w.stage {
			drop = append(drop, w)
		}
	}
	if len(drop) == 0 {
		return
	}
	release := func() {
		for _, w := range drop {
			if c, ok := w.stage.(interface{ Close() error }); ok {
				_ = c.Close()
			}
		}
	}
	if delay <= 0 {
		release()
		return
	}
	time.AfterFunc(delay, release)
}

// wafEntry remembers a built WAF and its config for reuse on reload.
type wafEntry struct {
	cfg   config.WAF
	stage pipeline.Stage
}
