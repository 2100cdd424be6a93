package broker

import (
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
)

func TestHandlersCoverRouteTable(t *testing.T) {
	s := &Server{}
	if _, err := bind(api.Routes, s.handlers()); err != nil {
		t.Fatal(err)
	}
}

// TestBindRefuses: dozod does not start with a table route it cannot
// serve, nor with a handler the table does not name.
func TestBindRefuses(t *testing.T) {
	ok := func(*request) error { return nil }
	hs := map[*api.Route]handlerFunc{api.Whoami: ok}
	if _, err := bind([]*api.Route{api.Whoami, api.ListDatasets}, hs); err == nil || !strings.Contains(err.Error(), "GET /v1/datasets") {
		t.Errorf("a route without a handler: %v", err)
	}
	hs[api.ListDatasets] = ok
	if _, err := bind([]*api.Route{api.Whoami}, hs); err == nil || !strings.Contains(err.Error(), "not in the API route table") {
		t.Errorf("a handler without a route: %v", err)
	}
	b, err := bind([]*api.Route{api.ListDatasets, api.Whoami}, hs)
	if err != nil || len(b) != 2 || b[0].Route != api.ListDatasets || b[1].Route != api.Whoami {
		t.Errorf("bound %v, %v", b, err)
	}
}

// TestRegisteredIsTable: the server registers the API table, each route
// with the table's action and login, and beyond it only the console and
// the catch-all 404.
func TestRegisteredIsTable(t *testing.T) {
	e := newEnv(t)
	byPattern := map[string]routeInfo{}
	for _, ri := range e.srv.routeList {
		byPattern[ri.pattern] = ri
	}
	for _, r := range api.Routes {
		ri, ok := byPattern[r.Pattern]
		if !ok || ri.action != r.Action || ri.auth != r.Login {
			t.Errorf("%s: registered %+v (%v), want action %q login %v", r.Pattern, ri, ok, r.Action, r.Login)
		}
		delete(byPattern, r.Pattern)
	}
	for p := range byPattern {
		if p != "/" && !strings.Contains(p, " /ui/") {
			t.Errorf("%s is registered outside the API table", p)
		}
	}
}
