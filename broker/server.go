// Package broker is dozod's HTTP API (see package api): identity,
// authorisation, keys and the catalog. It is the control plane only:
// payload bytes travel between clients and storage on presigned URLs that
// each allow one method on one object for minutes, and storage credentials
// never leave this process.
//
// Every handler authorises before it reveals anything: a caller with no
// access to a dataset gets the same 404 body as for a dataset (or file)
// that does not exist.
package broker

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/health"
	"github.com/dozo-vault/dozo/jobs"
	"github.com/dozo-vault/dozo/lifecycle"
	"github.com/dozo-vault/dozo/metrics"
	"github.com/dozo-vault/dozo/scrub"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// KeyService is the subset of Vault Transit dozod uses; *vault.Client
// implements it. Dataset keys stay inside it: dozod only asks it to wrap,
// unwrap and MAC.
type KeyService interface {
	crypto.KeyWrapper
	CreateKey(ctx context.Context, name string) error
	ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error)
	Rewrap(ctx context.Context, name, ciphertext string, associatedData []byte) (string, error)
	Rotate(ctx context.Context, name string) error
	ConfigureKey(ctx context.Context, name string, cfg vault.KeyConfig) error
	DeleteKey(ctx context.Context, name string) error
	HMAC(ctx context.Context, name string, data []byte) (string, error)
	VerifyHMAC(ctx context.Context, name string, data []byte, mac string) error
}

// Target is a storage target dozod can presign for; *storage.S3Target
// implements it.
type Target interface {
	storage.Target
	PresignPut(ctx context.Context, key string, expiry time.Duration) (*url.URL, error)
	PresignGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error)
}

// Options configure a Server.
type Options struct {
	Catalog    *catalog.Catalog
	Identifier Identifier
	Keys       KeyService
	Targets    []Target
	Admins     []string
	Submitters []string
	// Groups: Vault identity groups whose members have the admin or
	// submitter role too (roles.go); the Identifier reports membership.
	Groups GroupRoles
	// PresignExpiry is the lifetime of presigned URLs (default 10m).
	PresignExpiry time.Duration
	// UploadExpiry is how long an upload session lives without activity
	// (default 24h).
	UploadExpiry time.Duration
	Logger       *slog.Logger
	Version      string
	// Scrub and Metrics are the [scrub] and [metrics] config sections.
	Scrub   ScrubConfig
	Metrics MetricsConfig
	// Lifecycle and Jobs are the [lifecycle] and [jobs] config sections
	// (lifecycle.go, jobs.go).
	Lifecycle LifecycleConfig
	Jobs      JobsConfig
	Now       func() time.Time // for tests; default time.Now

	// Limits and Audit are the [limits] and [audit] config sections
	// (limits.go, anchor.go).
	Limits LimitsConfig
	Audit  AuditConfig
	// HealthInterval is how often Vault and the catalog are checked
	// (default DefaultHealthInterval); while Vault is found down, every
	// request is refused (deps.go).
	HealthInterval time.Duration
}

// Defaults.
const (
	DefaultPresignExpiry = time.Minute // short: a presigned URL outlives a revoke (see MaxPresignExpiry)
	DefaultUploadExpiry  = 24 * time.Hour
	DefaultK             = 4
	DefaultM             = 2
	MinPlainSegmentSize  = api.MinPlainSegmentSize // the client checks the same limits
	MaxPlainSegmentSize  = api.MaxPlainSegmentSize
	// MaxFileSize bounds a declared upload size (16 TiB).
	MaxFileSize = 16 << 40
	// MaxGrantPeriod: NIG accounts and NBDC use periods run at most a year.
	MaxGrantYears = 1
)

// Server is dozod's HTTP handler.
type Server struct {
	cat       *catalog.Catalog
	ident     Identifier
	keys      KeyService
	targets   map[string]Target
	targetIDs []string
	// roleSet is the global roles from dozod's config; SetRoles swaps it
	// whole (SIGHUP), so a request sees the old lists or the new, never a mix.
	roleSet   atomic.Pointer[globalRoles]
	presign   time.Duration
	uploadTTL time.Duration
	log       *slog.Logger
	version   string
	now       func() time.Time
	mux       *http.ServeMux
	// routeList is every route registered, in order (access.go).
	routeList []routeInfo

	macMemo       macMemo // verified manifest MACs (macAuth)
	manifests     manifestCache
	life          *lifecycle.Service // rotation, deletion, upload expiry
	jobs          *jobs.Runner       // runs them (lifecycle.go)
	deletionGrace time.Duration
	jobRetention  time.Duration // finished jobs' records are deleted after this (reaper.go)
	// roundClock gives a reaper round its slot (reaper.go); nil: the
	// catalog's clock.
	roundClock func(context.Context) (time.Time, error)

	scrubs *scrub.Scheduler // scrub.go

	metricsCfg   MetricsConfig     // ops.go: who may read the metrics, probe timing
	targetHealth *health.Targets   // ops.go: storage targets up or down
	metricsReg   *metrics.Registry // ops.go
	deps         *health.Deps      // deps.go: Vault and catalog health

	anchorState // anchor.go: the audit head anchored in Vault
	// guard limits and aggregates refusals of unidentified requests
	// (limits.go).
	guard *refusalGuard

	// adminGroups, submitGroups: identity group names giving the roles
	// (roles.go).
	adminGroups, submitGroups map[string]bool

	seen     seenUsers    // principals.go: users recorded as seen
	warnings warnCache    // warncache.go: grant-ending warnings, per user
	console  consoleState // console.go: the web console's sessions and pages
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Catalog == nil || o.Identifier == nil || o.Keys == nil {
		return nil, errors.New("broker: catalog, identifier and key service are required")
	}
	if len(o.Targets) == 0 {
		return nil, errors.New("broker: no storage targets")
	}
	s := &Server{
		cat: o.Catalog, ident: o.Identifier, keys: o.Keys,
		targets:   map[string]Target{},
		presign:   o.PresignExpiry,
		uploadTTL: o.UploadExpiry,
		log:       o.Logger,
		version:   o.Version,
		now:       o.Now,
		mux:       http.NewServeMux(),

		deletionGrace: o.Lifecycle.DeletionGrace,

		adminGroups:  set(o.Groups.AdminGroups),
		submitGroups: set(o.Groups.SubmitterGroups),
	}
	s.SetRoles(o.Admins, o.Submitters)
	for _, t := range o.Targets {
		if _, dup := s.targets[t.ID()]; dup {
			return nil, fmt.Errorf("broker: duplicate target id %q", t.ID())
		}
		s.targets[t.ID()] = t
		s.targetIDs = append(s.targetIDs, t.ID())
	}
	slices.Sort(s.targetIDs)
	if s.presign <= 0 {
		s.presign = DefaultPresignExpiry
	}
	if s.uploadTTL <= 0 {
		s.uploadTTL = DefaultUploadExpiry
	}
	if s.deletionGrace <= 0 {
		s.deletionGrace = DefaultDeletionGrace
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.newLifecycle(o); err != nil {
		return nil, err
	}
	if err := s.initScrub(o); err != nil {
		return nil, err
	}
	if err := s.initOps(o); err != nil {
		return nil, err
	}
	if err := s.initAuditGuards(o); err != nil {
		return nil, err
	}
	s.initDeps(o)
	s.routes()
	return s, nil
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// today is the current UTC date, against which grants are checked.
func (s *Server) today() string { return s.now().UTC().Format(catalog.DateLayout) }

// globalRoles are the users dozod's config names as admins and submitters.
type globalRoles struct {
	admins, submit map[string]bool
}

// SetRoles replaces the config's admins and submitters lists at once
// (dozod does it on SIGHUP): requests that start after it returns use the
// new lists. Identity groups are not affected.
func (s *Server) SetRoles(admins, submitters []string) {
	s.roleSet.Store(&globalRoles{admins: set(admins), submit: set(submitters)})
}

// isAdmin: u is listed in admins or is in an admin group.
func (s *Server) isAdmin(u *Identity) bool {
	return s.roleSet.Load().admins[u.Name] || inGroup(u, s.adminGroups)
}

// isSubmitter: u is listed in submitters or is in a submitter group.
func (s *Server) isSubmitter(u *Identity) bool {
	return s.roleSet.Load().submit[u.Name] || inGroup(u, s.submitGroups)
}

// roles are u's global roles, from the config lists and identity groups.
func (s *Server) roles(u *Identity) []string {
	var r []string
	if s.isAdmin(u) {
		r = append(r, "admin")
	}
	if s.isSubmitter(u) {
		r = append(r, "submitter")
	}
	return r
}

// notFoundDataset is the one answer for "no such dataset" and "no access
// to it", byte for byte, so the two cannot be told apart.
func notFoundDataset(id string) *httpError {
	return errorf(http.StatusNotFound, "dataset %q not found", id)
}

// notFoundFile is the one answer for a missing file, a missing dataset,
// and no access to either.
func notFoundFile(ds, name string) *httpError {
	return errorf(http.StatusNotFound, "file %q not found in dataset %q", name, ds)
}

// dsAccess is a caller's relation to a dataset.
type dsAccess struct {
	ds     *catalog.Dataset
	access []string // "admin", "custodian", "submitter", "grantee"
	frozen bool     // an incident freeze is in force on the dataset
}

func (a *dsAccess) has(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(a.access, r) {
			return true
		}
	}
	return false
}

// datasetAccess loads a dataset the caller may see (with what else aq
// asks for; its Dataset is set here). Unknown dataset and no access both
// return nil access and no error: the caller answers both the same way.
// A dataset hidden by a deletion is the same, except to those
// deletedState tells what became of it. A frozen caller is refused first,
// whatever the read found, so that refusal says nothing about the
// dataset either.
func (s *Server) datasetAccess(q *request, id string, aq catalog.AccessQuery) (*dsAccess, error) {
	if api.ValidateDatasetID(id) != nil {
		return nil, s.checkUserFrozen(q)
	}
	// The caller's freeze, the dataset, the caller's roles on it and its
	// freeze, in one read.
	aq.Dataset = id
	v, err := s.checks(q, aq)
	if err != nil {
		return nil, err
	}
	if err := callerFrozen(q, v); err != nil {
		return nil, err
	}
	if len(v.Datasets) == 0 {
		return nil, s.deletedState(q, id, false, http.StatusGone) // datasets.go
	}
	return s.accessOf(q, &v.Datasets[0]), nil
}

// checks reads what aq asks for the caller, on today's date, in one
// statement when it exists (catalog.Access), and notes the grants
// generation it saw for the request's warnings.
func (s *Server) checks(q *request, aq catalog.AccessQuery) (*catalog.AccessView, error) {
	aq.User, aq.Today = q.user.principal(), s.today()
	v, err := s.cat.Access(q.ctx, aq)
	if err != nil {
		return nil, internal("reading dataset access", err)
	}
	q.grantsGen, q.haveGen = v.GrantsGeneration, true // for warnExpiring
	return v, nil
}

// accessOf is the caller's relation to a dataset as the catalog gave it,
// with the admin role added for an admin: nil when the caller has none.
func (s *Server) accessOf(q *request, a *catalog.DatasetAccess) *dsAccess {
	s.macMemo.observe(a.TransitKey, a.KeyGeneration) // a rotation by another dozod
	roles := a.Roles
	if s.isAdmin(q.user) {
		roles = append([]string{"admin"}, roles...)
	}
	if len(roles) == 0 {
		return nil
	}
	return &dsAccess{ds: &a.Dataset, access: roles, frozen: a.Frozen}
}

// requireDataset is datasetAccess with the 404 for "none" and a 403 when
// the caller may see the dataset but needs one of roles (admin always
// passes). A former grantee learns why access ended (formerGrantee); a
// frozen caller is refused. Freezes of the dataset itself are left to the
// handler (a.refuseFrozen), since revoking and reviewing stay allowed.
func (s *Server) requireDataset(q *request, id string, roles ...string) (*dsAccess, error) {
	q.object = "dataset/" + id
	a, err := s.datasetAccess(q, id, catalog.AccessQuery{Counts: true})
	if err != nil {
		return nil, err
	}
	if a == nil {
		if err := s.formerGrantee(q, id); err != nil {
			return nil, err
		}
		return nil, notFoundDataset(id)
	}
	if len(roles) > 0 && !a.has(append(roles, "admin")...) {
		return nil, errorf(http.StatusForbidden, "dataset %q: this needs the %s role", id, strings.Join(roles, " or "))
	}
	return a, nil
}

// target resolves a target id to a configured target.
func (s *Server) target(id string) (Target, error) {
	t, ok := s.targets[id]
	if !ok {
		return nil, &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("storage target %q is not configured on this broker", id)}
	}
	return t, nil
}

func (s *Server) allTargets() []storage.Target {
	out := make([]storage.Target, 0, len(s.targetIDs))
	for _, id := range s.targetIDs {
		out = append(out, s.targets[id])
	}
	return out
}

// macAuth is vault.TransitHMAC with the broker's memo of verified MACs.
// A (key, bytes, MAC) triple Transit has produced or accepted once is
// accepted again without asking Vault: a fetch of a 200 GB file would
// otherwise send its whole manifest (hundreds of KB) to Vault on every
// call. Any other bytes or MAC still go to Vault, so a tampered catalog
// row is caught as before; rotate-key empties the memo when it raises
// min_decryption_version, after which Vault would refuse old MACs, and a
// dozod that reads a newer key generation (a rotation by another dozod on
// the same catalog) stops trusting what it memoised before.
type macAuth struct {
	vault.TransitHMAC
	memo *macMemo // nil: no memo
}

// manifestAuth is the dataset key's manifest authenticator, memoised.
func (s *Server) manifestAuth(transitKey string) macAuth {
	return macAuth{vault.TransitHMAC{Keys: s.keys, Key: transitKey}, &s.macMemo}
}

func (m macAuth) MAC(ctx context.Context, data []byte) (string, error) {
	mac, err := m.TransitHMAC.MAC(ctx, data)
	if err == nil {
		m.memo.add(m.Key, data, mac)
	}
	return mac, err
}

func (m macAuth) Verify(ctx context.Context, data []byte, mac string) error {
	if m.memo.has(m.Key, data, mac) {
		return nil
	}
	// The generation before asking Vault: an answer Vault gave before a
	// rotation this dozod learns of meanwhile is not kept under the new one.
	gen := m.memo.generation(m.Key)
	if err := m.TransitHMAC.Verify(ctx, data, mac); err != nil {
		return err
	}
	m.memo.addAt(m.Key, gen, data, mac)
	return nil
}

// macMemoSize bounds the memo; the oldest entries go first.
const macMemoSize = 8192

// macMemo is a bounded set of SHA-256 digests of verified (key, key
// generation, MAC, bytes) tuples. An entry counts only under the newest
// generation of its key this dozod has read from the catalog (observe), so
// a rotation by any dozod sharing the catalog retires what was memoised
// before it. Its methods are safe on a nil memo (they do nothing).
type macMemo struct {
	mu   sync.Mutex
	seen map[[32]byte]bool
	fifo [][32]byte
	gens map[string]int64 // key name -> newest generation read
}

func macMemoKey(name string, gen int64, data []byte, mac string) [32]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(gen)))
	h.Write([]byte(mac))
	h.Write([]byte{0})
	h.Write(data)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// observe records that the catalog gave key name generation gen. It
// reports whether gen is the newest this memo has seen of that key (false:
// the reader's row predates a rotation another read already saw).
func (c *macMemo) observe(name string, gen int64) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.gens[name]; gen < cur {
		return false
	} else if gen == cur {
		return true
	}
	if c.gens == nil {
		c.gens = map[string]int64{}
	}
	c.gens[name] = gen
	return true
}

// generation is the newest generation of key name observed.
func (c *macMemo) generation(name string) int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gens[name]
}

func (c *macMemo) has(name string, data []byte, mac string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[macMemoKey(name, c.gens[name], data, mac)]
}

// add records a MAC Transit has just produced: valid under the newest
// generation.
func (c *macMemo) add(name string, data []byte, mac string) {
	c.addAt(name, c.generation(name), data, mac)
}

// addAt records a triple Transit accepted when key name was at generation
// gen.
func (c *macMemo) addAt(name string, gen int64, data []byte, mac string) {
	if c == nil {
		return
	}
	k := macMemoKey(name, gen, data, mac)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[[32]byte]bool{}
	}
	if c.seen[k] {
		return
	}
	if len(c.fifo) >= macMemoSize {
		delete(c.seen, c.fifo[0])
		c.fifo = c.fifo[1:]
	}
	c.seen[k] = true
	c.fifo = append(c.fifo, k)
}

// reset forgets every entry.
func (c *macMemo) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen, c.fifo = nil, nil // gens stay: they only grow
}

// Start runs dozod's background work (scheduled scrubs, target health
// probes, the Vault and catalog probe) until ctx ends. It returns at once.
func (s *Server) Start(ctx context.Context) {
	s.startScrub(ctx)
	s.startOps(ctx)
	s.startAuditGuards(ctx)
	s.startDependencyProbe(ctx)
}

// adminHint is for routes only administrators may use: no dataset
// custodian can help there.
const adminHint = "only a dozo administrator can do this; dozod's config lists them (admins)"

// requireAdmin refuses a caller who is not an operator, and a frozen one:
// a compromised admin account is frozen like any other (another admin, or
// the config, lifts it).
func (s *Server) requireAdmin(q *request) error {
	if err := s.checkUserFrozen(q); err != nil {
		return err
	}
	if q.user == nil || !s.isAdmin(q.user) {
		return &httpError{status: http.StatusForbidden, msg: "this needs an administrator (the admin role)", hint: adminHint}
	}
	return nil
}
