// Package cooldown is the enforcement side of behavioural detection
// (detect.mode: enforce): an identity or client address that a detector
// flagged (enumeration, ownership anomaly, credential stuffing) is refused
// with 429 until its cool-down ends.
package cooldown

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// StageName is the name of the stage in decisions, metrics and the audit log.
const StageName = "cool_down"

// Checker says whether a subject hash or a client address is cooling down.
type Checker interface {
	CoolingDown(subject, client string) (until time.Time, ok bool)
}

// Stage refuses flagged callers. It is safe for concurrent use.
type Stage struct {
	c   Checker
	now func() time.Time
}

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage over c.
func New(c Checker) *Stage { return &Stage{c: c, now: time.Now} }

// Name implements pipeline.Stage.
func (s *Stage) Name() string { return StageName }

// Handle implements pipeline.Stage.
func (s *Stage) Handle(_ context.Context, x *pipeline.Exchange) pipeline.Decision {
	subject := x.SubjectHash()
	client := ""
	if a := x.ClientAddr; a.IsValid() {
		client = a.String()
	} else if x.Client.IsValid() {
		client = x.Client.Addr().Unmap().String()
	}
	until, ok := s.c.CoolingDown(subject, client)
	if !ok {
		return pipeline.Continue
	}
	secs := max(int64(until.Sub(s.now())/time.Second)+1, 1)
	d := pipeline.Halt(http.StatusTooManyRequests, "cool_down",
		"Requests from this caller are paused after suspicious activity; retry after "+strconv.FormatInt(secs, 10)+" s.")
	d.Headers = http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}}
	return d
}
