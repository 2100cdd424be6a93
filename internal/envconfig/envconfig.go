// Package envconfig reads environment overrides into a configuration struct
// and lists them, both from the struct's tags, so that a variable's name,
// how its value is parsed and its documentation are written once.
//
// A field takes part through its tags:
//
//	toml:"key"       the key as written in the file (the listing's first column)
//	env:"NAME"       the environment variable that overrides it
//	help:"text"      the listing's text: its default, then what it means
//
// A non-empty variable overrides the field; an empty or unset one leaves it
// as it is. Values are parsed by the field's type: string as is; []string
// comma-separated, each item trimmed, empty items dropped; bool by
// strconv.ParseBool; int by strconv.Atoi; time.Duration by
// time.ParseDuration. A value that does not parse is an error naming the
// variable. Nested structs are walked (an embedded one adds no heading);
// slices of structs are listed but not applied: which element a variable
// would be meant for is the caller's rule.
package envconfig

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var durationType = reflect.TypeFor[time.Duration]()

// Apply sets every env-tagged field of the struct cfg points to from getenv
// (normally os.Getenv). On an error, fields applied before it keep their new
// values: the caller refuses the whole configuration.
func Apply(cfg any, getenv func(string) string) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("envconfig: Apply needs a pointer to a struct")
	}
	return apply(v.Elem(), getenv)
}

func apply(v reflect.Value, getenv func(string) string) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if name := f.Tag.Get("env"); name != "" {
			if s := getenv(name); s != "" {
				if err := set(fv, name, s); err != nil {
					return err
				}
			}
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			if err := apply(fv, getenv); err != nil {
				return err
			}
		}
	}
	return nil
}

// set parses s into the field v, as the package comment says.
func set(v reflect.Value, name, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				items = append(items, x)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	default:
		panic(fmt.Sprintf("envconfig: %s: unsupported field type %s", name, v.Type()))
	}
	return nil
}

// Var is one documented environment variable.
type Var struct {
	Name  string // e.g. DOZOD_SCRUB_RATE
	Key   string // the file key with its sections, e.g. scrub.rate
	Type  reflect.Type
	Apply bool // false for a field in a slice of structs, which Apply leaves alone
}

// Vars lists the env-tagged fields of cfg's struct type, in field order.
func Vars(cfg any) []Var {
	var out []Var
	walk(reflect.TypeOf(cfg), "", true, nil, func(f reflect.StructField, key string, apply bool) {
		if name := f.Tag.Get("env"); name != "" {
			out = append(out, Var{Name: name, Key: key, Type: f.Type, Apply: apply})
		}
	})
	return out
}

// walk calls field for every exported field of t (a struct or a pointer to
// one) that is not a section, with its dotted key, and section (if not nil)
// for each section before its fields: a struct field ([key]) or a slice of
// structs ([[key]]). An embedded struct's fields are its parent's.
func walk(t reflect.Type, prefix string, apply bool,
	section func(f reflect.StructField, heading string),
	field func(f reflect.StructField, key string, apply bool)) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key := prefix + keyOf(f)
		switch {
		case f.Anonymous && f.Type.Kind() == reflect.Struct:
			walk(f.Type, prefix, apply, section, field)
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			if section != nil {
				section(f, "["+keyOf(f)+"]")
			}
			walk(f.Type, key+".", apply, section, field)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			if section != nil {
				section(f, "[["+keyOf(f)+"]]")
			}
			walk(f.Type.Elem(), key+".", false, section, field)
		default:
			field(f, key, apply)
		}
	}
}

// keyOf is the field's file key, or its name in parentheses when the file
// cannot set it (toml:"-").
func keyOf(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	switch k {
	case "-":
		return "(" + strings.ToLower(f.Name) + ")"
	case "":
		return f.Name
	}
	return k
}

// Columns of the listing: key, variable, text (from the variable's column
// when there is none); text wraps before lineWidth.
const (
	envColumn  = 22
	textColumn = 49
	lineWidth  = 99
)

// Help returns the listing of cfg's struct type: a heading per section
// ([section], or [[section]] for a slice) with its field's help text, and a
// row per field with a help tag: key, variable if any, text.
func Help(cfg any) string {
	var b strings.Builder
	walk(reflect.TypeOf(cfg), "", true,
		func(f reflect.StructField, heading string) { row(&b, heading, "", f.Tag.Get("help")) },
		func(f reflect.StructField, _ string, _ bool) {
			if text := f.Tag.Get("help"); text != "" {
				row(&b, keyOf(f), f.Tag.Get("env"), text)
			}
		})
	return b.String()
}

// row writes one entry: key, then the variable from envColumn, then the
// text from textColumn (envColumn without a variable), each moved right
// past what precedes it, the text wrapped into lines indented to its column.
func row(b *strings.Builder, key, env, text string) {
	line, col := "  "+key, envColumn
	if env != "" {
		line, col = pad(line, envColumn)+env, textColumn
	}
	if text == "" {
		b.WriteString(line + "\n")
		return
	}
	line = pad(line, col)
	width := 0
	for i, w := range strings.Fields(text) {
		if i > 0 && col+width+1+len(w) > lineWidth {
			b.WriteString(line + "\n")
			line, width = strings.Repeat(" ", col), 0
		} else if i > 0 {
			line += " "
			width++
		}
		line += w
		width += len(w)
	}
	b.WriteString(line + "\n")
}

// pad returns s with spaces up to column col, or one space if s reaches it.
func pad(s string, col int) string {
	if len(s) >= col {
		return s + " "
	}
	return s + strings.Repeat(" ", col-len(s))
}
