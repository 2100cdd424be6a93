package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dozo-vault/dozo/broker"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:        "serve",
		Usage:       "run the broker",
		Description: broker.ConfigHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "TOML config file", EnvVars: []string{"DOZOD_CONFIG"}},
			&cli.StringFlag{Name: "listen", Usage: "listen address (overrides config and DOZOD_LISTEN)"},
			&cli.BoolFlag{Name: "insecure-http", Usage: "serve plain HTTP (loopback listen address only)"},
		},
		Action: serve,
	}
}

func logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log_level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func serve(c *cli.Context) error {
	// The catalog, its WAL and anything else dozod writes are private.
	syscall.Umask(0o077)
	cfg, err := broker.LoadConfig(c.String("config"), os.Getenv)
	if err != nil {
		return err
	}
	if c.IsSet("listen") {
		cfg.Listen = c.String("listen")
	}
	if c.Bool("insecure-http") {
		cfg.InsecureHTTP = true
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := logger(cfg.LogLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	vc, err := vault.New(vault.Config{Address: cfg.Vault.Address, Token: cfg.Vault.Token, TransitMount: cfg.Vault.TransitMount, CACert: cfg.Vault.CACert,
		Timeout: cfg.Vault.Timeout})
	if err != nil {
		return err
	}
	// Fail at start, not at the first request, if dozod's own token is bad.
	self, err := vc.LookupSelf(ctx)
	if err != nil {
		return fmt.Errorf("checking dozod's vault token: %w", err)
	}
	targets, err := s3Targets(ctx, cfg, log)
	if err != nil {
		return err
	}
	// A SQLite file or a PostgreSQL URL; pending migrations are applied.
	cat, err := catalog.Open(ctx, cfg.Catalog)
	if err != nil {
		return err
	}
	defer cat.Close()
	log.Info("catalog open", "backend", cat.Backend(), "location", catalog.Redact(cfg.Catalog))
	ident := broker.NewVaultIdentifier(vc, broker.MaxTokenCacheAge, cfg.Auth.Mounts...).MapGroups(cfg.Auth.GroupRoles.Names()...)
	if missing, err := ident.CheckGroups(ctx); err != nil {
		return fmt.Errorf("checking the identity groups of [auth]: %w", err)
	} else if len(missing) > 0 {
		log.Warn("identity groups not in Vault (yet): nobody has their roles", "groups", missing)
	}
	srv, err := broker.New(broker.Options{
		Catalog: cat, Identifier: ident, Keys: vault.NewBatcher(vc), Targets: targets,
		Admins: cfg.Admins, Submitters: cfg.Submitters, Groups: cfg.Auth.GroupRoles, PresignExpiry: cfg.PresignExpiry, UploadExpiry: cfg.UploadExpiry,
		Logger: log, Version: version, Scrub: cfg.Scrub, Metrics: cfg.Metrics, Lifecycle: cfg.Lifecycle, Jobs: cfg.Jobs,
		Limits: cfg.Limits, Audit: cfg.Audit,
		HealthInterval: cfg.Vault.HealthInterval,
	})
	if err != nil {
		return err
	}
	srv.ConfigureConsole(cfg.Console)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadRolesOnHUP(ctx, hup, c.String("config"), cfg, srv, log)
	go srv.RunReaper(ctx, time.Minute)
	srv.Start(ctx) // background work: scheduled scrubs, target health
	if !self.ExpireTime.IsZero() {
		go renewToken(ctx, vc, log)
	}
	err = listenAndServe(ctx, cfg, srv, log)
	// Requests have stopped: record the refusals still only counted and
	// anchor the audit head before the catalog closes.
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv.Stop(sctx)
	return err
}

// reloadRolesOnHUP re-reads the config on SIGHUP and swaps in its admins
// and submitters lists (nothing else is reloaded; other changes need a
// restart). A config that does not load or validate changes nothing.
func reloadRolesOnHUP(ctx context.Context, hup <-chan os.Signal, path string, running *broker.Config, srv *broker.Server, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := broker.LoadConfig(path, os.Getenv)
		if err == nil {
			// As at start: the command line's overrides hold.
			cfg.Listen, cfg.InsecureHTTP = running.Listen, running.InsecureHTTP
			err = cfg.Validate()
		}
		if err != nil {
			log.Error("SIGHUP: config not reloaded; the roles stay as they were", "err", err)
			continue
		}
		srv.SetRoles(cfg.Admins, cfg.Submitters)
		log.Info("SIGHUP: roles reloaded from the config", "admins", len(cfg.Admins), "submitters", len(cfg.Submitters))
	}
}

// s3Targets connects to the configured targets and makes sure their
// buckets exist. A server that does not answer does not stop dozod: its
// targets start as down (the health probe finds them back, and placement
// and reads avoid them meanwhile), so restarting dozod during a storage
// outage does not add a broker outage. Any answer that is an error (wrong
// credentials, a refused bucket) is a configuration error and stops it.
func s3Targets(ctx context.Context, cfg *broker.Config, log *slog.Logger) ([]broker.Target, error) {
	var out []broker.Target
	for _, tc := range cfg.Targets {
		t, err := storage.NewS3Target(storage.S3Config{
			ID: tc.ID, Domain: tc.Domain, Endpoint: tc.Endpoint, Bucket: tc.Bucket, Region: tc.Region,
			AccessKey: tc.AccessKey, SecretKey: tc.SecretKey,
		})
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = t.EnsureBucket(cctx)
		cancel()
		if errors.Is(err, storage.ErrUnreachable) {
			log.Warn("storage target does not answer; starting with it down", "target", tc.ID, "err", err)
		} else if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// renewToken keeps dozod's periodic or renewable Vault token alive.
func renewToken(ctx context.Context, vc *vault.Client, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := vc.API().Auth().Token().RenewSelfWithContext(ctx, 0); err != nil {
			log.Warn("renewing dozod's vault token failed", "error", err.Error())
		}
	}
}

func listenAndServe(ctx context.Context, cfg *broker.Config, h http.Handler, log *slog.Logger) error {
	hs := &http.Server{
		Addr:              cfg.Listen,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	scheme := "https"
	if cfg.InsecureHTTP {
		scheme = "http"
	}
	log.Info("dozod listening", "url", scheme+"://"+ln.Addr().String(), "version", version)
	errc := make(chan error, 1)
	go func() {
		if cfg.InsecureHTTP {
			errc <- hs.Serve(ln)
		} else {
			errc <- hs.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("dozod shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
