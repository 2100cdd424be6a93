package broker

import (
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
)

// Refusals say who can help: an admin-only route needs an administrator
// (not the dataset's custodian), creating a dataset needs the submitter
// role (granted by the operators in dozod's config), and roles are
// written as words.
func TestRefusalHints(t *testing.T) {
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t"}, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/DS1/members/rita/submitter", nil, nil)

	for _, path := range []string{"/v1/admin/freezes", "/v1/targets", "/v1/scrubs"} {
		_, raw := e.call("tok-sam", "GET", path, nil, nil)
		b := errBody(t, raw)
		if !strings.Contains(b.Error, "administrator") || !strings.Contains(b.Hint, "administrator") || strings.Contains(b.Hint, "custodian") {
			t.Errorf("GET %s as a custodian: %+v", path, b)
		}
	}

	_, raw := e.call("tok-rita", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS2", Title: "t"}, nil)
	if b := errBody(t, raw); !strings.Contains(b.Hint, "submitter") || !strings.Contains(b.Hint, "dozod's config") {
		t.Errorf("create without the submitter role: %+v", b)
	}

	_, raw = e.call("tok-rita", "GET", "/v1/datasets/DS1/grants", nil, nil)
	if b := errBody(t, raw); strings.Contains(b.Error, "[") || !strings.Contains(b.Error, "custodian") {
		t.Errorf("a submitter listing grants: %+v", b)
	}
}

// SetRoles (dozod's SIGHUP) takes effect on the next request: a user added
// to the submitters may create datasets, an admin removed is refused.
func TestSetRoles(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.call("tok-rita", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS9", Title: "t"}, nil); code != 403 {
		t.Fatalf("rita creating a dataset before: %d", code)
	}
	e.srv.SetRoles([]string{"eve"}, []string{"sam", "rita"})
	e.must(201, "tok-rita", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS9", Title: "t"}, nil)
	if code, _ := e.call("tok-admin", "GET", "/v1/admin/freezes", nil, nil); code != 403 {
		t.Errorf("a removed admin: %d", code)
	}
	e.must(200, "tok-eve", "GET", "/v1/admin/freezes", nil, nil)
	var me api.User
	e.must(200, "tok-rita", "GET", "/v1/whoami", nil, &me)
	if strings.Join(me.Roles, ",") != "submitter" {
		t.Errorf("whoami roles %v", me.Roles)
	}
}
