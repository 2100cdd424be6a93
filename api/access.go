package api

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// NBDC access levels of a dataset. dozo is stricter than the NBDC classes:
// every level, even unrestricted, is read only with a grant; the controlled
// levels also need an NBDC application id on every grant.
const (
	AccessUnrestricted = "unrestricted"
	AccessRegistered   = "registered"
	AccessControlled1  = "controlled-type1" // the default
	AccessControlled2  = "controlled-type2"
)

// AccessLevels lists the valid access levels.
var AccessLevels = []string{AccessUnrestricted, AccessRegistered, AccessControlled1, AccessControlled2}

// DefaultMaxUseDays is a dataset's maximum use period unless set (NIG:
// accounts last at most a year). MaxMaxUseDays is the most any dataset may
// allow. A grant from..until lasts until-from+1 days (both ends count),
// at most the dataset's maximum and never more than one calendar year:
// until is at latest the day before from's anniversary, so 365 days, or
// 366 when the period holds a 29 February.
const (
	DefaultMaxUseDays = 365
	MaxMaxUseDays     = 366
)

var (
	reJGAD = regexp.MustCompile(`^JGAD\d{6}$`)
	reJGAP = regexp.MustCompile(`^JGAP\d{6}$`)
	reJDU  = regexp.MustCompile(`^J-DU\d{6}$`)
)

// ValidateAccessLevel accepts one of AccessLevels.
func ValidateAccessLevel(l string) error {
	if !slices.Contains(AccessLevels, l) {
		return fmt.Errorf("access level %q: want one of %v", l, AccessLevels)
	}
	return nil
}

// IsControlled reports whether grants of a dataset at level l need an
// NBDC application id.
func IsControlled(l string) bool { return l == AccessControlled1 || l == AccessControlled2 }

// ValidateJGAD checks an NBDC dataset id (JGAD and six digits).
func ValidateJGAD(s string) error {
	if !reJGAD.MatchString(s) {
		return fmt.Errorf("NBDC dataset id %q: want JGAD and six digits, e.g. JGAD000123", s)
	}
	return nil
}

// ValidateJGAP checks an NBDC policy id (JGAP and six digits).
func ValidateJGAP(s string) error {
	if !reJGAP.MatchString(s) {
		return fmt.Errorf("NBDC policy id %q: want JGAP and six digits, e.g. JGAP000123", s)
	}
	return nil
}

// ValidateApplicationID checks an NBDC data-use application id (J-DU and
// six digits).
func ValidateApplicationID(s string) error {
	if !reJDU.MatchString(s) {
		return fmt.Errorf("application id %q: want J-DU and six digits, e.g. J-DU000123", s)
	}
	return nil
}

// ValidateMaxUseDays checks a dataset's maximum use period.
func ValidateMaxUseDays(n int) error {
	if n < 1 || n > MaxMaxUseDays {
		return fmt.Errorf("maximum use period %d days: want 1..%d", n, MaxMaxUseDays)
	}
	return nil
}

// RevokeRequest is the body of DELETE /v1/datasets/{ds}/grants/{user}.
type RevokeRequest struct {
	Reason string `json:"reason"` // required: why access ends, for the register
}

// Freeze kinds.
const (
	FreezeUser    = "user"
	FreezeDataset = "dataset"
)

// FreezeRequest is the body of POST /v1/admin/freezes.
type FreezeRequest struct {
	Kind   string `json:"kind"` // "user" or "dataset"
	Name   string `json:"name"` // user name or dataset id
	Reason string `json:"reason"`
	// AllowUnknown freezes a user name dozod has not seen log in (a
	// freeze ahead of someone's first login). Without it an unknown user
	// name is refused, so a typo does not leave the real account open.
	AllowUnknown bool `json:"allow_unknown,omitempty"`
}

// MemberRequest is the optional body of PUT
// /v1/datasets/{ds}/members/{user}/{role}.
type MemberRequest struct {
	// AllowUnknown gives the role to a user name dozod has not seen log
	// in (someone who has not logged in yet); see GrantRequest.
	AllowUnknown bool `json:"allow_unknown,omitempty"`
}

// UnfreezeRequest is the body of DELETE /v1/admin/freezes/{kind}/{name}.
type UnfreezeRequest struct {
	Reason string `json:"reason"`
}

// Freeze is an incident freeze of a user or dataset: while in force
// (LiftedAt nil), every data read, upload and grant involving it is
// refused.
type Freeze struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	Name       string     `json:"name"`
	Reason     string     `json:"reason"`
	FrozenBy   string     `json:"frozen_by"`
	FrozenAt   time.Time  `json:"frozen_at"`
	LiftedAt   *time.Time `json:"lifted_at,omitempty"`
	LiftedBy   string     `json:"lifted_by,omitempty"`
	LiftReason string     `json:"lift_reason,omitempty"`
	Pending    bool       `json:"pending,omitempty"` // a user freeze made before the user's first login
}

// Per-dataset roles a custodian (or admin) can give: PUT and DELETE
// /v1/datasets/{ds}/members/{user}/{role}.
const (
	RoleCustodian = "custodian"
	RoleSubmitter = "submitter"
)

// Member is one holder of a per-dataset role.
type Member struct {
	Dataset string    `json:"dataset"`
	User    string    `json:"user"`
	Role    string    `json:"role"`
	AddedBy string    `json:"added_by"`
	AddedAt time.Time `json:"added_at"`
	Pending bool      `json:"pending,omitempty"` // the user has not logged in since it was added
	// LoginName: as Grant.LoginName.
	LoginName string `json:"login_name,omitempty"`
}
