// Package bruteforce is the login-protection stage: on an API's login
// operation it refuses attempts for locked usernames and addresses with
// 429, holds attempts after failures for a progressive delay, and, on the
// response side, counts failed logins (by status or a CEL expression over
// the response) per username and per client address, raising alerts for
// credential stuffing and distributed guessing. Counting and locking are
// internal/bruteforce's; this stage is the HTTP side of it.
package bruteforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	bf "github.com/bulwarkapi/bulwark/internal/bruteforce"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// StageName is the name of the stage in decisions, metrics and the audit log.
const StageName = "brute_force"

// ResponseBodyLimit bounds the response body a failure expression reads:
// a login answer is small; a larger one is not evaluated (counted as not
// failed) rather than buffered.
const ResponseBodyLimit = 64 << 10

// FieldError locates a problem in the API's brute_force block.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

// Field is the path of the problem under the API's config.
func (e *FieldError) Field() string { return e.Path }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Options configures the stage of one API.
type Options struct {
	API    string
	Config config.BruteForce
	Spec   *spec.Document
	Env    *policy.Env
	Store  bf.Store
	// Monitor records refusals without enforcing them and holds no
	// attempt back.
	Monitor bool
	Logger  *slog.Logger
	// OnAlert counts an alert (for a metric); nil is allowed.
	OnAlert func(reason string)
}

// Stage protects one API's login operation. It is safe for concurrent use.
type Stage struct {
	api       string
	operation string
	username  *policy.Program
	failure   *policy.Program
	statuses  []int
	guard     *bf.Guard
	monitor   bool
	logger    *slog.Logger
	onAlert   func(string)
}

var (
	_ pipeline.Stage         = (*Stage)(nil)
	_ pipeline.ResponseStage = (*Stage)(nil)
)

// New compiles the block. Problems are *FieldError values joined with
// errors.Join, located under "brute_force".
func New(o Options) (*Stage, error) {
	c := o.Config
	var errs []error
	fail := func(path string, err error) { errs = append(errs, &FieldError{Path: "brute_force" + path, Err: err}) }
	s := &Stage{api: o.API, operation: c.Operation, statuses: c.FailureStatuses,
		monitor: o.Monitor || c.Mode == "monitor", logger: o.Logger, onAlert: o.OnAlert}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if o.Spec != nil {
		if op := o.Spec.Operation(c.Operation); op != nil {
			s.operation = op.Key
		} else {
			fail(".operation", fmt.Errorf("the spec has no operation %q", c.Operation))
		}
	}
	if o.Env == nil {
		return nil, errors.New("brute_force: no policy environment")
	}
	var err error
	if s.username, err = o.Env.CompileKey(c.Username, policy.Request); err != nil {
		fail(".username", err)
	}
	if c.Failure != "" {
		if s.failure, err = o.Env.Compile(c.Failure, policy.Response); err != nil {
			fail(".failure", err)
		}
	}
	delay := time.Duration(0)
	if c.Delay != nil {
		delay = c.Delay.D()
	}
	s.guard, err = bf.New(o.Store, bf.Options{
		MaxFailures:           c.MaxFailures,
		MaxClientFailures:     c.MaxClientFailures,
		Window:                c.Window.D(),
		Lockout:               c.Lockout.D(),
		Delay:                 delay,
		MaxDelay:              c.MaxDelay.D(),
		MaxUsernamesPerClient: c.MaxUsernamesPerClient,
		MaxClientsPerUsername: c.MaxClientsPerUsername,
	})
	if err != nil {
		fail("", err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Name implements pipeline.Stage and pipeline.ResponseStage.
func (s *Stage) Name() string { return StageName }

// Handle runs before a login attempt is forwarded.
func (s *Stage) Handle(ctx context.Context, x *pipeline.Exchange) pipeline.Decision {
	if x.Operation != s.operation {
		return pipeline.Continue
	}
	x.Username = s.usernameHash(ctx, x)
	v, err := s.guard.Check(ctx, x.Username, x.ClientKey())
	if err != nil {
		// Only a cancelled request gets here: store failures are absorbed
		// by the failover store.
		return pipeline.Halt(499, "client_closed", "")
	}
	if v.Block {
		secs := max(int64((v.RetryAfter+time.Second-1)/time.Second), 1)
		d := pipeline.Halt(http.StatusTooManyRequests, "login_"+string(v.Reason),
			"Too many failed login attempts; retry after "+strconv.FormatInt(secs, 10)+" s.")
		d.Headers = http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}}
		d.Monitor = s.monitor
		return d
	}
	if v.Delay > 0 && !s.monitor {
		t := time.NewTimer(v.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return pipeline.Halt(499, "client_closed", "")
		}
		return pipeline.Decision{Action: pipeline.Annotate, Reason: "login_delayed",
			Detail: "held " + v.Delay.String() + " after " + strconv.Itoa(v.Failures) + " failures"}
	}
	return pipeline.Continue
}

// HandleResponse counts the attempt's outcome.
func (s *Stage) HandleResponse(ctx context.Context, x *pipeline.Exchange, resp *http.Response) pipeline.Decision {
	if x.Operation != s.operation || resp == nil {
		return pipeline.Continue
	}
	client := x.ClientKey()
	if !s.failed(ctx, x, resp) {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 && x.Username != "" {
			_ = s.guard.Success(ctx, x.Username, client)
		}
		return pipeline.Continue
	}
	v, alerts, err := s.guard.Failure(ctx, x.Username, client)
	if err != nil {
		return pipeline.Continue
	}
	for _, a := range alerts {
		if s.onAlert != nil {
			s.onAlert(string(a.Reason))
		}
		s.logger.Warn("brute-force alert", "api", s.api, "reason", string(a.Reason), "count", a.Count,
			"client", x.ClientAddr.String(), "username_hash", x.Username, "request_id", x.RequestID, "enforced", !s.monitor)
	}
	if v.LockedNow {
		s.logger.Info("login locked", "api", s.api, "reason", string(v.Reason), "retry_after", v.RetryAfter.String(),
			"client", x.ClientAddr.String(), "username_hash", x.Username, "request_id", x.RequestID)
	}
	d := pipeline.Decision{Action: pipeline.Annotate, Reason: "login_failed"}
	for _, a := range alerts {
		d.Rules = append(d.Rules, string(a.Reason))
	}
	return d
}

// failed reports whether the response is a failed login.
func (s *Stage) failed(ctx context.Context, x *pipeline.Exchange, resp *http.Response) bool {
	if s.failure == nil {
		return slices.Contains(s.statuses, resp.StatusCode)
	}
	body, complete, err := x.ResponseBody(resp, ResponseBodyLimit)
	if err != nil || !complete {
		body = nil
	}
	a, err := policy.NewActivation(policy.Input{Exchange: x, Response: &policy.ResponseInput{Status: resp.StatusCode, Header: resp.Header, Body: body}})
	if err != nil {
		return false
	}
	ok, err := s.failure.Eval(ctx, a)
	return err == nil && ok
}

// usernameHash evaluates the username expression and returns the hash of
// the normalised (trimmed, lower-cased) username, or "" when there is
// none. Lower-casing makes "Alice" and "alice" one subject, as most
// identity systems treat them.
func (s *Stage) usernameHash(ctx context.Context, x *pipeline.Exchange) string {
	a, err := policy.NewActivation(policy.Input{Exchange: x})
	if err != nil {
		return ""
	}
	u, err := s.username.EvalKey(ctx, a)
	if err != nil {
		return ""
	}
	u = strings.ToLower(strings.TrimSpace(u))
	if u == "" {
		return ""
	}
	return policy.HashID(u)
}
