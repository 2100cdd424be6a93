package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Dataset roles held per dataset (besides grants).
const (
	RoleCustodian = "custodian"
	RoleSubmitter = "submitter"
	RoleGrantee   = "grantee"
)

// Dataset is one dataset row with its file totals.
type Dataset struct {
	ID               string
	Title            string
	K, M             int
	PlainSegmentSize int64
	SegmentSize      int64 // stored bytes per full segment
	TransitKey       string
	CreatedBy        string
	CreatorEntity    string // CreatedBy's Vault entity, bound to the creator's roles; "" if unknown
	CreatedAt        time.Time
	Files            int   // available files
	Bytes            int64 // their plaintext bytes
	// NBDC metadata. AccessLevel is one of the Access* constants; NBDCID
	// (JGAD...) and PolicyID (JGAP...) may be empty; MaxUseDays bounds the
	// period of every grant (1..366).
	AccessLevel string
	NBDCID      string
	PolicyID    string
	MaxUseDays  int
	// KeyGeneration grows each time a rotation of TransitKey retires its
	// older versions (FinishRotation); MACs verified under an older
	// generation must be verified again. CreateDataset records it as
	// given: 0 for a new key, the key's count of retirements for a row a
	// rebuild recreates (so it never goes back for a key).
	KeyGeneration int64
}

// NBDC access levels.
const (
	AccessUnrestricted = "unrestricted"
	AccessRegistered   = "registered"
	AccessControlled1  = "controlled-type1"
	AccessControlled2  = "controlled-type2"
)

// DefaultMaxUseDays is a dataset's maximum use period unless set: one
// year, NIG's account limit.
const DefaultMaxUseDays = 365

// CreateDataset inserts d and makes its creator custodian and submitter,
// atomically. An existing id is ErrExists.
func (c *Catalog) CreateDataset(ctx context.Context, d Dataset) error {
	return c.tx(ctx, func(tx *sql.Tx) error {
		if d.AccessLevel == "" {
			d.AccessLevel = AccessControlled1
		}
		if d.MaxUseDays == 0 {
			d.MaxUseDays = DefaultMaxUseDays
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO datasets(id, title, k, m, plain_segment_size, segment_size, transit_key, created_by, created_at,
				access_level, nbdc_id, policy_id, max_use_days, key_generation)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Title, d.K, d.M, d.PlainSegmentSize, d.SegmentSize, d.TransitKey, d.CreatedBy, ts(d.CreatedAt),
			d.AccessLevel, d.NBDCID, d.PolicyID, d.MaxUseDays, max(d.KeyGeneration, 0))
		if isCheck(err) {
			return fmt.Errorf("catalog: create dataset %s: bad access level or maximum use period: %w", d.ID, err)
		}
		if isConstraint(err) {
			return fmt.Errorf("dataset %s: %w", d.ID, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("catalog: create dataset: %w", err)
		}
		for _, role := range []string{RoleCustodian, RoleSubmitter} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO members(dataset_id, "user", role, added_by, added_at, entity_id) VALUES (?, ?, ?, ?, ?, ?)`,
				d.ID, d.CreatedBy, role, d.CreatedBy, ts(d.CreatedAt), d.CreatorEntity); err != nil {
				return fmt.Errorf("catalog: add member: %w", err)
			}
		}
		return nil
	})
}

const datasetCols = datasetOwnCols + `,
	(SELECT count(*) FROM files f WHERE f.dataset_id = d.id AND f.state = 'available' AND ` + liveFile + `),
	(SELECT coalesce(sum(f.size), 0) FROM files f WHERE f.dataset_id = d.id AND f.state = 'available' AND ` + liveFile + `)`

func scanDataset(s rowScanner) (*Dataset, error) {
	var d Dataset
	if err := scanDatasetInto(s, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// scanDatasetInto scans datasetCols into d and the columns after them
// into extra.
func scanDatasetInto(s rowScanner, d *Dataset, extra ...any) error {
	var created int64
	if err := s.Scan(append(datasetDest(d, &created), extra...)...); err != nil {
		return err
	}
	d.CreatedAt = fromTS(created)
	return nil
}

// datasetDest are the destinations of datasetCols; created receives
// CreatedAt as stored.
func datasetDest(d *Dataset, created *int64) []any {
	return []any{&d.ID, &d.Title, &d.K, &d.M, &d.PlainSegmentSize, &d.SegmentSize, &d.TransitKey, &d.CreatedBy, created,
		&d.AccessLevel, &d.NBDCID, &d.PolicyID, &d.MaxUseDays, &d.KeyGeneration, &d.Files, &d.Bytes}
}

// Dataset returns one dataset or ErrNotFound.
func (c *Catalog) Dataset(ctx context.Context, id string) (*Dataset, error) {
	d, err := scanDataset(c.db.QueryRowContext(ctx, `SELECT `+datasetCols+` FROM datasets d WHERE d.id = ? AND d.deleted_at IS NULL`, id))
	if err != nil {
		return nil, notFound(err, "dataset "+id)
	}
	return d, nil
}

// Datasets returns every dataset, ordered by id.
func (c *Catalog) Datasets(ctx context.Context) ([]Dataset, error) {
	return queryAll(ctx, c, "datasets", scanDataset, `SELECT `+datasetCols+` FROM datasets d WHERE d.deleted_at IS NULL ORDER BY d.id`)
}

// Roles returns user's relations to the dataset on day `today`
// (YYYY-MM-DD, UTC): custodian, submitter, and grantee if an active grant
// exists. An unknown dataset has no roles. The user's rows are those
// Principal.holds: of the entity, whatever name it logs in with.
func (c *Catalog) Roles(ctx context.Context, datasetID string, user Principal, today string) ([]string, error) {
	who, whoArgs := user.holds("m", `"user"`)
	rows, err := c.db.QueryContext(ctx, `SELECT DISTINCT m.role FROM members m WHERE m.dataset_id = ? AND `+who+` ORDER BY m.role`,
		append([]any{datasetID}, whoArgs...)...)
	if err != nil {
		return nil, fmt.Errorf("catalog: roles: %w", err)
	}
	defer rows.Close()
	var roles []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("catalog: roles: %w", err)
		}
		roles = append(roles, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	g, err := c.ActiveGrant(ctx, datasetID, user, today)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	if g != nil {
		roles = append(roles, RoleGrantee)
	}
	return roles, nil
}

// DatasetAccess is a dataset with one user's relation to it.
type DatasetAccess struct {
	Dataset
	// Roles are the user's roles as Roles returns them: custodian and
	// submitter (members rows, in that order), then grantee (an active
	// grant).
	Roles []string
	// Frozen: an incident freeze of the dataset is in force
	// (ActiveFreeze(FreezeDataset, ID) finds one).
	Frozen bool
	// File is the file AccessQuery asked for (FileID or FileName).
	File *File
}

// AccessQuery is what one request's checks read (Access).
type AccessQuery struct {
	// Dataset is the dataset to read; "" reads every dataset, or with
	// FileID the file's.
	Dataset string
	User    Principal
	Today   string // YYYY-MM-DD (UTC), the day grants are judged on
	// Counts fills in Dataset.Files and Bytes, a count over the
	// dataset's files that only a listing shows; otherwise both are 0.
	Counts bool
	// Recipient reads User's registered age recipient (Recipient).
	Recipient bool
	// FileID reads that file (File) with its dataset, whatever its state;
	// FileName reads the available file of that name in Dataset
	// (AvailableFile). A dataset read with a file is left out when the
	// file is not found.
	FileID, FileName string
}

// AccessView is what Access read for one request.
type AccessView struct {
	// UserFrozen: a freeze of the user is in force (UserFreeze finds
	// one).
	UserFrozen bool
	// Recipient is the user's registered recipient, "" if none (when
	// AccessQuery.Recipient).
	Recipient string
	// GrantsGeneration is the grants generation (GrantsGeneration) as of
	// this read.
	GrantsGeneration int64
	// Datasets are the datasets asked for that exist and are not
	// deleted, ordered by id, each with the user's roles on it and
	// whether it is frozen (and its file, when asked for).
	Datasets []DatasetAccess
}

// callerCols are the columns of AccessView about the user: the freeze
// (UserFreeze), the grants generation and, when asked, the recipient
// (Recipient).
func (q *AccessQuery) callerCols() (string, []any) {
	who, args := q.User.holds("u", "name")
	cols := `EXISTS (SELECT 1 FROM freezes u WHERE u.kind = ? AND ` + who + ` AND u.lifted_at IS NULL), ` + generationCol
	args = append([]any{FreezeUser}, args...)
	if q.Recipient {
		cols += `, coalesce((SELECT r.recipient FROM users r WHERE r.name = ?), '')`
		args = append(args, q.User.Name)
	}
	return cols, args
}

// datasetOwnCols are the dataset's own columns, datasetNoCounts the
// same as datasetCols without the count over the dataset's files (0 for
// both).
const (
	datasetOwnCols = `d.id, d.title, d.k, d.m, d.plain_segment_size, d.segment_size, d.transit_key, d.created_by, d.created_at,
	d.access_level, d.nbdc_id, d.policy_id, d.max_use_days, d.key_generation`
	datasetNoCounts = datasetOwnCols + `, 0, 0`
)

// sql is Access's statement and its arguments, and the columns about
// the caller alone (read by themselves when no dataset is found).
func (q *AccessQuery) sql() (query string, args []any, caller string, callerArgs []any) {
	member, memberArgs := q.User.holds("m", `"user"`)
	grant, grantArgs := q.User.holds("g", `"user"`)
	cols := datasetNoCounts
	if q.Counts {
		cols = datasetCols
	}
	caller, callerArgs = q.callerCols()
	args = slices.Concat([]any{RoleCustodian}, memberArgs, []any{RoleSubmitter}, memberArgs, grantArgs, []any{q.Today, q.Today, FreezeDataset}, callerArgs)
	query = `SELECT ` + cols + `,
		EXISTS (SELECT 1 FROM members m WHERE m.dataset_id = d.id AND m.role = ? AND ` + member + `),
		EXISTS (SELECT 1 FROM members m WHERE m.dataset_id = d.id AND m.role = ? AND ` + member + `),
		EXISTS (SELECT 1 FROM grants g WHERE g.dataset_id = d.id AND ` + grant + `
			AND g.revoked_at IS NULL AND g.superseded_by IS NULL AND g.valid_from <= ? AND g.until >= ?),
		EXISTS (SELECT 1 FROM freezes z WHERE z.kind = ? AND z.name = d.id AND z.lifted_at IS NULL),
		` + caller
	switch {
	case q.FileID != "":
		query += `, ` + fileCols + ` FROM datasets d JOIN files f ON f.dataset_id = d.id AND f.id = ?`
		args = append(args, q.FileID)
	case q.FileName != "":
		query += `, ` + fileCols + ` FROM datasets d JOIN files f ON f.dataset_id = d.id AND f.name = ? AND f.state = 'available' AND ` + liveFile
		args = append(args, q.FileName)
	default:
		query += ` FROM datasets d`
	}
	query += ` WHERE d.deleted_at IS NULL`
	if q.Dataset != "" {
		query, args = query+` AND d.id = ?`, append(args, q.Dataset)
	}
	query += ` ORDER BY d.id`
	return query, args, caller, callerArgs
}

// Access reads, in one statement, what every request checks: whether a
// freeze of user is in force, the dataset asked for (or every dataset)
// that is not deleted, each with user's roles on day Today and whether a
// freeze of it is in force, and with them the user's recipient and a file
// when asked. It answers what UserFreeze, Dataset, Roles, ActiveFreeze,
// Recipient, File and AvailableFile answer one by one, in one round trip
// and one consistent view, and the grants generation with them. When no dataset row is found (an unknown or
// deleted dataset, a missing file) the user's freeze and recipient are
// read by a second statement, so the view is complete either way.
func (c *Catalog) Access(ctx context.Context, q AccessQuery) (*AccessView, error) {
	query, args, caller, callerArgs := q.sql()
	file := q.FileID != "" || q.FileName != ""
	v := &AccessView{}
	rows, err := c.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: dataset access: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a DatasetAccess
		var custodian, submitter, grantee bool
		var dsCreated, fileCreated int64
		dst := append(datasetDest(&a.Dataset, &dsCreated), &custodian, &submitter, &grantee, &a.Frozen, &v.UserFrozen, &v.GrantsGeneration)
		if q.Recipient {
			dst = append(dst, &v.Recipient)
		}
		if file {
			a.File = &File{}
			dst = append(dst, fileDest(a.File, &fileCreated)...)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("catalog: dataset access: %w", err)
		}
		a.CreatedAt = fromTS(dsCreated)
		if file {
			a.File.fromRow(fileCreated)
		}
		for _, r := range []struct {
			has  bool
			role string
		}{{custodian, RoleCustodian}, {submitter, RoleSubmitter}, {grantee, RoleGrantee}} {
			if r.has {
				a.Roles = append(a.Roles, r.role)
			}
		}
		v.Datasets = append(v.Datasets, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: dataset access: %w", err)
	}
	rows.Close()
	if len(v.Datasets) == 0 {
		dst := []any{&v.UserFrozen, &v.GrantsGeneration}
		if q.Recipient {
			dst = append(dst, &v.Recipient)
		}
		if err := c.db.QueryRowContext(ctx, `SELECT `+caller, callerArgs...).Scan(dst...); err != nil {
			return nil, fmt.Errorf("catalog: caller freeze: %w", err)
		}
	}
	return v, nil
}

// AddMember gives user a per-dataset role (custodian or submitter), bound
// to the user's Vault entity entityID ("" for a user not seen yet: bound
// at their first login, see SeenUser). It is idempotent: adding a role the
// user holds changes nothing.
func (c *Catalog) AddMember(ctx context.Context, datasetID, user, entityID, role, by string, now time.Time) error {
	if role != RoleCustodian && role != RoleSubmitter {
		return fmt.Errorf("catalog: role %q: want %s or %s", role, RoleCustodian, RoleSubmitter)
	}
	_, err := c.db.ExecContext(ctx, `INSERT INTO members(dataset_id, "user", role, added_by, added_at, entity_id) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(dataset_id, "user", role) DO NOTHING`, datasetID, user, role, by, ts(now), entityID)
	if isConstraint(err) {
		return fmt.Errorf("dataset %s: %w", datasetID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("catalog: add member: %w", err)
	}
	return nil
}

// RemoveMember takes a per-dataset role away; ErrNotFound if the user did
// not hold it. Every row that may be the user's goes (Principal.names:
// by name or by entity), since a removal only reduces access.
// The last custodian cannot be removed (ErrState): a dataset always has
// someone to manage its grants besides the operators.
func (c *Catalog) RemoveMember(ctx context.Context, datasetID string, user Principal, role string) error {
	who, whoArgs := user.names("members", `"user"`)
	return c.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE dataset_id = ? AND `+who+` AND role = ?`,
			append(append([]any{datasetID}, whoArgs...), role)...)
		if err != nil {
			return fmt.Errorf("catalog: remove member: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("member %s of %s as %s: %w", user.Name, datasetID, role, ErrNotFound)
		}
		var left int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE dataset_id = ? AND role = 'custodian'`, datasetID).Scan(&left); err != nil {
			return fmt.Errorf("catalog: remove member: %w", err)
		}
		if role == RoleCustodian && left == 0 {
			return fmt.Errorf("%s is the last custodian of %s: %w", user.Name, datasetID, ErrState)
		}
		return nil
	})
}

// Member is one per-dataset role holder.
type Member struct {
	DatasetID, User, Role, AddedBy string
	AddedAt                        time.Time
	EntityID                       string // "" while pending the user's first login
	LoginName                      string // the name the entity last logged in with (see Grant.LoginName)
}

// Members lists a dataset's custodians and submitters, by user and role.
func (c *Catalog) Members(ctx context.Context, datasetID string) ([]Member, error) {
	return queryAll(ctx, c, "members", func(s rowScanner) (*Member, error) {
		var m Member
		var at int64
		if err := s.Scan(&m.DatasetID, &m.User, &m.Role, &m.AddedBy, &at, &m.EntityID, &m.LoginName); err != nil {
			return nil, err
		}
		m.AddedAt = fromTS(at)
		return &m, nil
	}, `SELECT dataset_id, "user", role, added_by, added_at, entity_id,
		coalesce((SELECT u.name FROM users u WHERE members.entity_id <> '' AND u.entity_id = members.entity_id
			ORDER BY coalesce(u.last_seen, 0) DESC, u.name LIMIT 1), "user")
		FROM members WHERE dataset_id = ? ORDER BY "user", role`, datasetID)
}
