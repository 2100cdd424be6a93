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

const datasetCols = `d.id, d.title, d.k, d.m, d.plain_segment_size, d.segment_size, d.transit_key, d.created_by, d.created_at,
	d.access_level, d.nbdc_id, d.policy_id, d.max_use_days, d.key_generation,
	(SELECT count(*) FROM files f WHERE f.dataset_id = d.id AND f.state = 'available'),
	(SELECT coalesce(sum(f.size), 0) FROM files f WHERE f.dataset_id = d.id AND f.state = 'available')`

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
	if err := s.Scan(append([]any{&d.ID, &d.Title, &d.K, &d.M, &d.PlainSegmentSize, &d.SegmentSize, &d.TransitKey, &d.CreatedBy, &created,
		&d.AccessLevel, &d.NBDCID, &d.PolicyID, &d.MaxUseDays, &d.KeyGeneration, &d.Files, &d.Bytes}, extra...)...); err != nil {
		return err
	}
	d.CreatedAt = fromTS(created)
	return nil
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
}

// Access returns the dataset id that is not deleted (every such dataset,
// ordered by id, when id is ""), each with user's roles on day today and
// whether a freeze of it is in force: what Dataset, Roles and ActiveFreeze
// answer, read in one statement, so the check every request makes costs
// one round trip and one consistent view. An unknown or deleted id gives
// none.
func (c *Catalog) Access(ctx context.Context, id string, user Principal, today string) ([]DatasetAccess, error) {
	member, memberArgs := user.holds("m", `"user"`)
	grant, grantArgs := user.holds("g", `"user"`)
	args := slices.Concat([]any{RoleCustodian}, memberArgs, []any{RoleSubmitter}, memberArgs, grantArgs, []any{today, today, FreezeDataset})
	where := ""
	if id != "" {
		where, args = ` AND d.id = ?`, append(args, id)
	}
	return queryAll(ctx, c, "dataset access", scanDatasetAccess, `SELECT `+datasetCols+`,
		EXISTS (SELECT 1 FROM members m WHERE m.dataset_id = d.id AND m.role = ? AND `+member+`),
		EXISTS (SELECT 1 FROM members m WHERE m.dataset_id = d.id AND m.role = ? AND `+member+`),
		EXISTS (SELECT 1 FROM grants g WHERE g.dataset_id = d.id AND `+grant+`
			AND g.revoked_at IS NULL AND g.superseded_by IS NULL AND g.valid_from <= ? AND g.until >= ?),
		EXISTS (SELECT 1 FROM freezes z WHERE z.kind = ? AND z.name = d.id AND z.lifted_at IS NULL)
		FROM datasets d WHERE d.deleted_at IS NULL`+where+` ORDER BY d.id`, args...)
}

func scanDatasetAccess(s rowScanner) (*DatasetAccess, error) {
	var a DatasetAccess
	var custodian, submitter, grantee bool
	if err := scanDatasetInto(s, &a.Dataset, &custodian, &submitter, &grantee, &a.Frozen); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		has  bool
		role string
	}{{custodian, RoleCustodian}, {submitter, RoleSubmitter}, {grantee, RoleGrantee}} {
		if r.has {
			a.Roles = append(a.Roles, r.role)
		}
	}
	return &a, nil
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
