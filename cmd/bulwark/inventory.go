package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwarkapi/bulwark/internal/pseudo"

	"github.com/spf13/cobra"

	"github.com/bulwarkapi/bulwark/internal/collector"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/dlp"
	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/event/natsbus"
	"github.com/bulwarkapi/bulwark/internal/inventory"
	"github.com/bulwarkapi/bulwark/internal/inventory/importer"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// importBatch is how many imported events are ingested and deduplicated
// at once: one store transaction per batch.
const importBatch = 512

// dlpClasses are the classes an import scans bodies for.
var dlpClasses = []dlp.Class{dlp.PAN, dlp.IBAN, dlp.USSSN, dlp.ABARouting, dlp.SWIFTBIC, dlp.UKNINO, dlp.Email, dlp.Phone, dlp.IPAddress, dlp.JWT, dlp.PrivateKey, dlp.CloudKey}

func inventoryCmd(stdout, stderr io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "inventory", Short: "Import traffic into the API inventory and export it"}
	c.AddCommand(importCmd(stdout, stderr), exportCmd(stdout, stderr))
	return c
}

// openCollector loads the config and its specs and opens the inventory
// store named by store.url.
func openCollector(ctx context.Context, file string, dedup bool, logger *slog.Logger) (*config.Config, *collector.Collector, error) {
	return openCollectorWith(ctx, file, dedup, logger, nil)
}

// openCollectorWith is openCollector publishing cool-downs on pub (nil
// for none).
func openCollectorWith(ctx context.Context, file string, dedup bool, logger *slog.Logger, pub *natsbus.CoolDownPublisher) (*config.Config, *collector.Collector, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, &exitError{code: exitInvalid, err: err}
	}
	specs := map[string]*spec.Document{}
	for _, a := range cfg.APIs {
		if a.Spec == "" {
			continue
		}
		doc, err := spec.Load(ctx, a.Spec)
		if err != nil {
			return nil, nil, &exitError{code: exitInvalid, err: fmt.Errorf("api %s: %w", a.Name, err)}
		}
		specs[a.Name] = doc
	}
	pseudo.SetKey(cfg.Privacy.PseudonymSecret) // imports hash the subjects they read as the gateways do
	o := collector.Options{Config: cfg, Specs: specs, Dedup: dedup, Logger: logger}
	if pub != nil {
		o.CoolDowns = pub
	}
	c, err := collector.New(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return cfg, c, nil
}

func importCmd(stdout, stderr io.Writer) *cobra.Command {
	var file, format, api string
	c := &cobra.Command{
		Use:   "import -c FILE [--format auto|har|nginx|jsonl] [--api NAME] TRAFFIC...",
		Short: "Feed HAR files or access logs to the inventory (idempotent: re-importing a file adds nothing)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			_, col, err := openCollector(ctx, file, true, logger)
			if err != nil {
				return err
			}
			defer col.Close()
			scanner := dlp.NewScanner(dlpClasses)
			classify := func(body []byte) []string {
				var out []string
				for _, cl := range dlp.Classes(scanner.Scan(body)) {
					out = append(out, string(cl))
				}
				return out
			}
			var failed bool
			for _, path := range args {
				st, err := importFile(ctx, col, path, importer.Options{Format: importer.Format(format), API: api, Classify: classify})
				if err != nil {
					fmt.Fprintf(stderr, "%s: %v\n", path, err)
					failed = true
					continue
				}
				fmt.Fprintf(stdout, "%s: %d read, %d imported, %d skipped\n", path, st.Read, st.Imported, st.Skipped)
				for _, e := range st.Errors {
					fmt.Fprintf(stderr, "%s: %s\n", path, e)
				}
			}
			if err := col.Flush(ctx); err != nil {
				return err
			}
			s := col.Stats()
			fmt.Fprintf(stdout, "inventory: %d endpoints; %d events ingested, %d already imported\n",
				len(col.Inventory().Endpoints()), s.Ingested, s.Duplicates)
			if failed {
				return &exitError{code: exitFailure, err: errors.New("")}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "config", "c", "bulwark.yaml", "config file (store.url, specs, inventory settings)")
	c.Flags().StringVar(&format, "format", "auto", "auto, har, nginx or jsonl")
	c.Flags().StringVar(&api, "api", "", "API name to file the traffic under (matches a configured API's spec)")
	return c
}

func importFile(ctx context.Context, col *collector.Collector, path string, o importer.Options) (importer.Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return importer.Stats{}, err
	}
	defer f.Close()
	batch := make([]event.Exchange, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := col.Handle(ctx, batch)
		batch = batch[:0]
		return err
	}
	st, err := importer.Import(ctx, bufio.NewReaderSize(f, 1<<16), o, func(e event.Exchange) error {
		batch = append(batch, e)
		if len(batch) >= importBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	return st, flush()
}

func exportCmd(stdout, stderr io.Writer) *cobra.Command {
	var file, format, api, out, title string
	c := &cobra.Command{
		Use:   "export -c FILE --format openapi [--api NAME] [-o FILE]",
		Short: "Write the learned inventory as an OpenAPI 3.1 document (JSON, or YAML with --format openapi-yaml)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f inventory.Format
			switch format {
			case "openapi", "openapi-json":
				f = inventory.FormatJSON
			case "openapi-yaml":
				f = inventory.FormatYAML
			default:
				return &exitError{code: exitInvalid, err: fmt.Errorf("--format must be openapi, openapi-json or openapi-yaml, got %q", format)}
			}
			logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			_, col, err := openCollector(cmd.Context(), file, false, logger)
			if err != nil {
				return err
			}
			defer col.Close()
			doc, err := col.Inventory().ExportOpenAPI(inventory.ExportOptions{API: api, Title: title, Format: f})
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = stdout.Write(doc)
				return err
			}
			return os.WriteFile(out, doc, 0o644)
		},
	}
	c.Flags().StringVarP(&file, "config", "c", "bulwark.yaml", "config file (store.url)")
	c.Flags().StringVar(&format, "format", "openapi", "openapi (JSON), openapi-json or openapi-yaml")
	c.Flags().StringVar(&api, "api", "", "export one API only")
	c.Flags().StringVar(&title, "title", "Bulwark inventory", "the document's info.title")
	c.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	return c
}

// collectorCmd consumes the gateways' events from NATS JetStream into the
// inventory and findings in the store, until SIGINT or SIGTERM.
func collectorCmd(stderr io.Writer) *cobra.Command {
	var file, adminAddr string
	c := &cobra.Command{
		Use:   "collector -c FILE",
		Short: "Consume exchange events from NATS (cluster.nats_url) into the inventory store (store.url)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := config.Load(file)
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			if cfg.Cluster.NATSURL == "" {
				return &exitError{code: exitInvalid, err: fmt.Errorf("%s: cluster.nats_url is required by the collector", file)}
			}
			logger := newLogger(stderr, cfg.Log)
			var coolPub *natsbus.CoolDownPublisher
			if cfg.Detect.Mode == "enforce" {
				// The gateways enforce what the detectors here decide:
				// cool-downs go out on core NATS.
				coolPub, err = natsbus.NewCoolDownPublisher(cfg.Cluster.NATSURL, natsbus.CoolDownOptions{
					Subject: cfg.Cluster.NATSCoolDownSubject, Logger: logger.With("component", "cooldowns")})
				if err != nil {
					return err
				}
				defer coolPub.Close()
			}
			_, col, err := openCollectorWith(ctx, file, true, logger, coolPub)
			if err != nil {
				return err
			}
			defer col.Close()
			cons, err := natsbus.NewConsumer(ctx, cfg.Cluster.NATSURL, natsbus.ConsumerOptions{
				Stream: cfg.Cluster.NATSStream, Subject: cfg.Cluster.NATSSubject, Durable: cfg.Cluster.NATSDurable, Logger: logger})
			if err != nil {
				return err
			}
			defer cons.Close()
			handle := col.Handle
			addr := adminAddr
			if addr == "" {
				addr = cfg.Admin.Addr
			}
			if !cfg.Admin.Disabled && addr != "" {
				// The cluster's whole inventory: admin API, dashboard and metrics.
				a, err := startCollectorAdmin(cfg, addr, col, cons, logger.With("component", "admin"))
				if err != nil {
					return err
				}
				defer a.close()
				handle = func(ctx context.Context, evs []event.Exchange) error {
					if err := col.Handle(ctx, evs); err != nil {
						return err
					}
					a.timeline.Add(evs)
					return nil
				}
			}
			done := make(chan struct{})
			go func() { col.Run(ctx); close(done) }()
			logger.Info("collector consuming", "nats", cfg.Cluster.NATSURL, "cool_downs", coolDownsTarget(cfg))
			err = cons.Run(ctx, handle)
			stop()
			<-done
			return err
		},
	}
	c.Flags().StringVarP(&file, "config", "c", "bulwark.yaml", "config file")
	c.Flags().StringVar(&adminAddr, "admin", "", "admin listener address (default admin.addr of the config; the admin API, dashboard and /metrics over the cluster's inventory)")
	return c
}

// coolDownsTarget describes, for the start-up log line, where the
// collector's cool-downs go.
func coolDownsTarget(cfg *config.Config) string {
	if cfg.Detect.Mode != "enforce" {
		return "none (detect.mode monitor)"
	}
	return "published on " + cfg.Cluster.NATSCoolDownSubject
}
