package broker

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/internal/envconfig"
)

// dozodVars are the environment variables dozod has always read; a rename
// would silently drop a site's setting.
var dozodVars = strings.Fields(`DOZOD_ADMINS DOZOD_AUDIT_ANCHOR_INTERVAL DOZOD_AUDIT_ANCHOR_KEY
	DOZOD_AUTH_ADMIN_GROUPS DOZOD_AUTH_MOUNTS DOZOD_AUTH_SUBMITTER_GROUPS DOZOD_CATALOG
	DOZOD_CONSOLE_OIDC_MOUNT DOZOD_CONSOLE_OIDC_ROLE DOZOD_CONSOLE_PUBLIC_URL DOZOD_DELETION_GRACE
	DOZOD_INSECURE_HTTP DOZOD_JOBS_LEASE DOZOD_JOBS_RETENTION DOZOD_LIMITS_AGGREGATE_WINDOW DOZOD_LIMITS_MAX_SOURCES
	DOZOD_LIMITS_REFUSALS_PER_MINUTE DOZOD_LIMITS_REFUSAL_BURST DOZOD_LISTEN DOZOD_LOG_LEVEL
	DOZOD_METRICS_TOKEN_FILE DOZOD_PRESIGN_EXPIRY DOZOD_PROBE_INTERVAL DOZOD_PROBE_TIMEOUT
	DOZOD_S3_ACCESS_KEY DOZOD_S3_SECRET_KEY DOZOD_SCRUB_DEEP_INTERVAL DOZOD_SCRUB_LIGHT_INTERVAL
	DOZOD_SCRUB_RATE DOZOD_SCRUB_REPAIR DOZOD_SCRUB_SHARDS DOZOD_SUBMITTERS DOZOD_TLS_CERT DOZOD_TLS_KEY
	DOZOD_UPLOAD_EXPIRY DOZOD_VAULT_ADDR DOZOD_VAULT_CACERT DOZOD_VAULT_HEALTH_INTERVAL
	DOZOD_VAULT_TIMEOUT DOZOD_VAULT_TOKEN DOZOD_VAULT_TOKEN_FILE DOZOD_VAULT_TRANSIT_MOUNT`)

// sampleValue is a value of the variable's type that parses.
func sampleValue(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "17m"
	case t.Kind() == reflect.Bool:
		return "true"
	case t.Kind() == reflect.Int:
		return "17"
	case t.Kind() == reflect.Slice:
		return " a , b "
	}
	return "sample"
}

// TestConfigEnv: every variable dozod reads is declared once, documented in
// ConfigHelp, and changes the configuration when set; a value that does not
// parse is refused with the variable's name.
func TestConfigEnv(t *testing.T) {
	vars := envconfig.Vars(Config{})
	var names []string
	for _, v := range vars {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, dozodVars) {
		t.Fatalf("declared variables\n%v\nwant\n%v", names, dozodVars)
	}
	for _, v := range vars {
		if !strings.Contains(ConfigHelp, " "+v.Name+" ") {
			t.Errorf("ConfigHelp does not document %s", v.Name)
		}
		fresh := func() *Config { return &Config{Targets: []TargetConfig{{ID: "t"}}} }
		c := fresh()
		if err := c.applyEnv(func(k string) string {
			if k == v.Name {
				return sampleValue(v.Type)
			}
			return ""
		}); err != nil {
			t.Errorf("%s=%s: %v", v.Name, sampleValue(v.Type), err)
			continue
		}
		if reflect.DeepEqual(c, fresh()) {
			t.Errorf("%s (%s) is not applied", v.Name, v.Key)
		}
		if k := v.Type.Kind(); k == reflect.Bool || k == reflect.Int || k == reflect.Int64 {
			err := fresh().applyEnv(func(k string) string {
				if k == v.Name {
					return "not-a-value"
				}
				return ""
			})
			if err == nil || !strings.Contains(err.Error(), v.Name) {
				t.Errorf("%s=not-a-value: error %v does not name the variable", v.Name, err)
			}
		}
	}
	// The environment fills in, never overrides, a target's own keys.
	c := &Config{Targets: []TargetConfig{{AccessKey: "own", SecretKeyFile: "/own"}, {}}}
	env := map[string]string{"DOZOD_S3_ACCESS_KEY": "envak", "DOZOD_S3_SECRET_KEY": "envsk"}
	if err := c.applyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Targets[0].AccessKey != "own" || c.Targets[0].SecretKey != "" || c.Targets[1].AccessKey != "envak" || c.Targets[1].SecretKey != "envsk" {
		t.Fatalf("targets after env: %+v", c.Targets)
	}
}
