// Command bulwark is the Bulwark API security platform: gateway, config
// check, demo, and audit-log verification. This file is the only place that
// calls os.Exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwarkapi/bulwark/internal/audit"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/demo"
	"github.com/bulwarkapi/bulwark/internal/gateway"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2 // invalid config, or a broken audit log
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "bulwark:", err)
	return exitFailure
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "bulwark",
		Short:         "API security for financial cloud applications",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(gatewayCmd(stderr), checkCmd(stdout), demoCmd(stdout, stderr), versionCmd(stdout), auditCmd(stdout),
		inventoryCmd(stdout, stderr), collectorCmd(stderr))
	return root
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(stdout, "bulwark %s\n", version)
			return nil
		},
	}
}

func checkCmd(stdout io.Writer) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a config: every problem with file:line; exit 0 if valid, 2 if not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err == nil {
				// Build everything the gateway would (certificates, specs,
				// upstream TLS) without binding a port.
				_, err = gateway.New(cmd.Context(), cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Version: version, NoAudit: true})
			}
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintln(stdout, "warning:", w)
			}
			fmt.Fprintf(stdout, "%s: valid (%s, %s)\n", file, plural(len(cfg.Listeners), "listener"), plural(len(cfg.APIs), "API"))
			return nil
		},
	}
	c.Flags().StringVarP(&file, "config", "c", "bulwark.yaml", "config file")
	return c
}

func gatewayCmd(stderr io.Writer) *cobra.Command {
	var file string
	var noWatch bool
	c := &cobra.Command{
		Use:   "gateway -c FILE",
		Short: "Run the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			logger := newLogger(stderr, cfg.Log)
			return serve(cmd.Context(), cfg, gateway.Options{ConfigPath: file, Logger: logger, Version: version, Watch: !noWatch})
		},
	}
	c.Flags().StringVarP(&file, "config", "c", "bulwark.yaml", "config file")
	c.Flags().BoolVar(&noWatch, "no-watch", false, "do not reload when the config file changes (SIGHUP still reloads)")
	return c
}

// serve runs a gateway until SIGINT or SIGTERM, reloading on SIGHUP.
func serve(ctx context.Context, cfg *config.Config, opts gateway.Options) error {
	g, err := gateway.New(ctx, cfg, opts)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			return &exitError{code: exitInvalid, err: err}
		}
		return err
	}
	if err := g.Start(ctx); err != nil {
		_ = g.Shutdown(context.Background())
		return err
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				_ = g.Reload(ctx, "SIGHUP") // logged and counted by Reload
				continue
			}
			opts.Logger.Info("draining", "signal", s.String())
			return g.Shutdown(context.Background())
		case <-ctx.Done():
			return g.Shutdown(context.Background())
		}
	}
}

func demoCmd(stdout, stderr io.Writer) *cobra.Command {
	var o demo.Options
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run a sample bank API behind the gateway on loopback, with customers and attackers, with zero setup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if o.Duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.Duration)
				defer cancel()
			}
			o.Out = stdout
			o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			o.Version = version
			return demo.Run(ctx, o)
		},
	}
	c.Flags().DurationVar(&o.Duration, "duration", 0, "stop after this long (default: run until interrupted)")
	c.Flags().StringVar(&o.Dir, "dir", "", "directory for the generated config, certificates and audit log (default: a new temporary directory)")
	c.Flags().StringVar(&o.Report, "report", "", "at exit, write the traffic summary (per attack kind and for legitimate customers) as JSON to this file")
	c.Flags().StringVar(&o.ReadyFile, "ready", "", "once serving, write the demo's addresses and admin token as JSON to this file")
	c.Flags().IntVar(&o.Customers, "customers", 10, "number of simulated legitimate customers")
	c.Flags().BoolVar(&o.NoTraffic, "no-traffic", false, "run the bank and the gateway without simulated customers and attackers")
	return c
}

func auditCmd(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Audit log tools"}
	c.AddCommand(&cobra.Command{
		Use:   "verify FILE",
		Short: "Check an audit log's hash chain; exit 2 and name the first broken record if it was altered",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := audit.Verify(f)
			if err != nil {
				return fmt.Errorf("verify %s: %w", args[0], err)
			}
			if res.FirstBroken > 0 {
				return &exitError{code: exitInvalid, err: fmt.Errorf("%s:%d: broken: %s (%d records before it verified)", args[0], res.FirstBroken, res.Reason, res.FirstBroken-1)}
			}
			fmt.Fprintf(stdout, "%s: intact, %d records\n", args[0], res.Records)
			return nil
		},
	})
	return c
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
