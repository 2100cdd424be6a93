package envconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Wait time.Duration `toml:"wait" env:"T_WAIT" help:"1s (how long)"`
}

type Embedded struct {
	Groups []string `toml:"groups" env:"T_GROUPS" help:"[]"`
}

type item struct {
	Key string `toml:"key" env:"T_ITEM_KEY" help:"per item"`
}

type config struct {
	Name    string   `toml:"name" env:"T_NAME" help:"none; the name"`
	On      bool     `toml:"on" env:"T_ON" help:"false"`
	N       int      `toml:"n" env:"T_N" help:"0"`
	Secret  string   `toml:"-" env:"T_SECRET" help:"(env only)"`
	Quiet   string   `toml:"quiet"`
	Section inner    `toml:"section" help:"a section"`
	Items   []item   `toml:"items" help:"a list"`
	List    []string `toml:"list" env:"T_LIST"`
	Embedded

	hidden string
}

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestApply(t *testing.T) {
	c := config{Name: "file", N: 3, List: []string{"x"}, Items: []item{{}}}
	err := Apply(&c, getenv(map[string]string{
		"T_NAME": "env", "T_ON": "true", "T_WAIT": "90s", "T_SECRET": "s",
		"T_LIST": " a, ,b ", "T_GROUPS": "g", "T_ITEM_KEY": "k",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := config{Name: "env", On: true, N: 3, Secret: "s", Section: inner{90 * time.Second},
		Items: []item{{}}, List: []string{"a", "b"}, Embedded: Embedded{[]string{"g"}}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	// Unset and empty variables leave the file's values.
	if err := Apply(&c, getenv(map[string]string{"T_NAME": ""})); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("empty variable changed %+v (%v)", c, err)
	}
	// Only separators: the list is emptied, as an empty list in the file.
	if err := Apply(&c, getenv(map[string]string{"T_LIST": " , "})); err != nil || c.List != nil {
		t.Fatalf("list %q (%v)", c.List, err)
	}
}

func TestApplyBadValueNamesVariable(t *testing.T) {
	for name, val := range map[string]string{"T_ON": "maybe", "T_N": "3x", "T_WAIT": "soon"} {
		c := config{Name: "file"}
		err := Apply(&c, getenv(map[string]string{name: val}))
		if err == nil || !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("%s=%s: error %v", name, val, err)
		}
	}
}

func TestVars(t *testing.T) {
	var got []string
	for _, v := range Vars(config{}) {
		got = append(got, v.Name+" "+v.Key+" "+map[bool]string{true: "applied", false: "listed"}[v.Apply])
	}
	want := []string{
		"T_NAME name applied", "T_ON on applied", "T_N n applied", "T_SECRET (secret) applied",
		"T_WAIT section.wait applied", "T_ITEM_KEY items.key listed", "T_LIST list applied",
		"T_GROUPS groups applied",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestHelp(t *testing.T) {
	h := Help(config{})
	for _, line := range []string{
		"  name                T_NAME                     none; the name\n",
		"  (secret)            T_SECRET                   (env only)\n",
		"  [section]           a section\n",
		"  wait                T_WAIT                     1s (how long)\n",
		"  [[items]]           a list\n",
		"  groups              T_GROUPS                   []\n",
	} {
		if !strings.Contains(h, line) {
			t.Errorf("help lacks %q:\n%s", line, h)
		}
	}
	// Fields without help (quiet, list) are not listed.
	if strings.Contains(h, "quiet") || strings.Contains(h, "T_LIST") {
		t.Errorf("undocumented fields listed:\n%s", h)
	}
	long := strings.Repeat("word ", 40)
	var b strings.Builder
	row(&b, "k", "V", long)
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if len(l) > lineWidth {
			t.Errorf("line of %d columns: %q", len(l), l)
		}
	}
}
