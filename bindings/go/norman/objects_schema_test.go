package norman_test

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// The Go objects cannot drift from docs/schemas/norman_objects.json: every object of the schema has
// a Go type here whose json fields are exactly the schema's properties (nested objects included),
// each of a kind that decodes the schema's type, required ones never omitempty, and no omitempty
// field whose zero value would hide a different default (active: true). A property added to the
// schema fails this test, by name, until the Go struct has it.
var goTypes = map[string]reflect.Type{
	"SocketPairingResponse":     reflect.TypeOf(norman.Pairing{}),
	"SocketAssetPairingRequest": reflect.TypeOf(norman.SocketAssetPairingRequest{}),
	"SocketInputPairingRequest": reflect.TypeOf(norman.SocketInputPairingRequest{}),
	"ChecksumRequest":           reflect.TypeOf(norman.ChecksumRequest{}),
	"AssetDownloadRequest":      reflect.TypeOf(norman.AssetDownloadRequest{}),
	"InputDownloadRequest":      reflect.TypeOf(norman.InputDownloadRequest{}),
	"OutputDownloadRequest":     reflect.TypeOf(norman.OutputDownloadRequest{}),
	"StatusFlag":                reflect.TypeOf(norman.StatusFlag{}),
	"QueryConstraints":          reflect.TypeOf(norman.QueryConstraints{}),
	"LoginResponse":             reflect.TypeOf(norman.LoginResponse{}),
	"Account":                   reflect.TypeOf(norman.Account{}),
	"Model":                     reflect.TypeOf(norman.Model{}),
	"Invocation":                reflect.TypeOf(norman.Invocation{}),
	// The three tracked downloads in one struct; EntityType says which fields are set.
	"TrackedDownloadUnion": reflect.TypeOf(norman.TrackedDownload{}),
}

type schemaNode map[string]any

type schemaChecker struct {
	defs     map[string]any
	problems []string
	visited  map[string]bool
}

func (c *schemaChecker) fail(path, format string, args ...any) {
	c.problems = append(c.problems, path+": "+fmt.Sprintf(format, args...))
}

// resolve follows a $ref into the object's $defs.
func (c *schemaChecker) resolve(node schemaNode) schemaNode {
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		def, ok := c.defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if !ok {
			panic("unresolved " + ref)
		}
		node = def
	}
}

type jsonField struct {
	typ       reflect.Type
	omitempty bool
}

func jsonFields(t reflect.Type) map[string]jsonField {
	fields := map[string]jsonField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		fields[name] = jsonField{f.Type, strings.Contains(","+opts+",", ",omitempty,")}
	}
	return fields
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// object checks a struct against an object schema (or, for a union, against the properties of all
// its alternatives, where required-ness is per alternative and not checked).
func (c *schemaChecker) object(path string, node schemaNode, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		c.fail(path, "an object in the schema, %v in Go", t)
		return
	}
	key := path + "|" + t.String()
	if c.visited[key] {
		return
	}
	c.visited[key] = true
	properties := map[string]schemaNode{}
	required := map[string]bool{}
	alternatives := []any{map[string]any(node)}
	if union, ok := node["oneOf"].([]any); ok {
		alternatives = union
	}
	for _, alt := range alternatives {
		alt := c.resolve(alt.(map[string]any))
		props, _ := alt["properties"].(map[string]any)
		for name, p := range props {
			properties[name] = p.(map[string]any)
		}
		if len(alternatives) == 1 {
			req, _ := alt["required"].([]any)
			for _, r := range req {
				required[r.(string)] = true
			}
		}
	}
	fields := jsonFields(t)
	for _, name := range sortedKeys(properties) {
		field, ok := fields[name]
		if !ok {
			c.fail(path+"."+name, "in the schema, not in Go's %v", t)
			continue
		}
		prop := properties[name]
		if field.omitempty && required[name] {
			c.fail(path+"."+name, "required by the schema but omitempty in Go")
		}
		if field.omitempty {
			base := field.typ
			switch def, has := prop["default"]; {
			case has && base.Kind() == reflect.Bool && def != false,
				has && isNumber(base.Kind()) && def != float64(0):
				c.fail(path+"."+name, "omitempty drops Go's zero value, but the schema's default is %v", def)
			}
		}
		c.value(path+"."+name, prop, field.typ)
	}
	for _, name := range sortedKeys(fields) {
		if _, ok := properties[name]; !ok {
			c.fail(path+"."+name, "in Go's %v, not in the schema", t)
		}
	}
}

func isNumber(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Float64
}

// value checks that a Go type decodes a schema value.
func (c *schemaChecker) value(path string, node schemaNode, t reflect.Type) {
	node = c.resolve(node)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	kindIs := func(want string, ok bool) {
		if !ok {
			c.fail(path, "%s in the schema, %v in Go", want, t)
		}
	}
	if alts, ok := node["anyOf"].([]any); ok {
		var real []schemaNode
		for _, a := range alts {
			if a.(map[string]any)["type"] != "null" {
				real = append(real, a.(map[string]any))
			}
		}
		if len(real) == 1 {
			c.value(path, real[0], t)
		} else {
			kindIs("one of several types", t.Kind() == reflect.Interface)
		}
		return
	}
	if _, ok := node["oneOf"]; ok {
		c.object(path, node, t)
		return
	}
	if values, ok := node["enum"].([]any); ok {
		if _, isString := values[0].(string); isString {
			kindIs("a string enum", t.Kind() == reflect.String)
		} else {
			kindIs("an integer enum", t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64)
		}
		return
	}
	switch node["type"] {
	case "string":
		kindIs("a string", t.Kind() == reflect.String)
	case "integer":
		kindIs("an integer", t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64)
	case "number":
		kindIs("a number", t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64 || t.Kind() == reflect.Interface)
	case "boolean":
		kindIs("a boolean", t.Kind() == reflect.Bool)
	case "array":
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Interface {
			kindIs("an array", false)
		} else if items, ok := node["items"].(map[string]any); ok && t.Kind() == reflect.Slice {
			c.value(path+"[]", items, t.Elem())
		}
	case "object":
		if _, ok := node["properties"]; ok {
			c.object(path, node, t)
		} else if t.Kind() != reflect.Map || t.Key().Kind() != reflect.String {
			kindIs("a map", false)
		} else if values, ok := node["additionalProperties"].(map[string]any); ok {
			c.value(path+"{}", values, t.Elem())
		}
	default:
		c.fail(path, "a schema node this test does not know: %v", node)
	}
}

func loadSchema(t *testing.T) map[string]schemaNode {
	t.Helper()
	text, err := os.ReadFile("../../../docs/schemas/norman_objects.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]schemaNode
	if err := json.Unmarshal(text, &schema); err != nil {
		t.Fatal(err)
	}
	return schema
}

func checkSchema(schema map[string]schemaNode) []string {
	var problems []string
	for _, name := range sortedKeys(schema) {
		object := schema[name]
		goType, ok := goTypes[name]
		if !ok {
			problems = append(problems, name+": an object of the schema with no Go type in this test")
			continue
		}
		defs, _ := object["$defs"].(map[string]any)
		c := &schemaChecker{defs: defs, visited: map[string]bool{}}
		c.object(name, object, goType)
		problems = append(problems, c.problems...)
	}
	for name := range goTypes {
		if _, ok := schema[name]; !ok {
			problems = append(problems, name+": no longer in the schema")
		}
	}
	return problems
}

func TestObjectsMatchTheSchema(t *testing.T) {
	if problems := checkSchema(loadSchema(t)); len(problems) > 0 {
		t.Fatalf("the Go objects drift from docs/schemas/norman_objects.json:\n%s", strings.Join(problems, "\n"))
	}
}

func TestAPropertyAddedToTheSchemaIsCaught(t *testing.T) {
	schema := loadSchema(t)
	schema["Model"]["properties"].(map[string]any)["license"] = map[string]any{"type": "string"}
	schema["StatusFlag"]["required"] = append(schema["StatusFlag"]["required"].([]any), "id")
	param := schema["Model"]["$defs"].(map[string]any)["ModelParam"].(map[string]any)
	param["properties"].(map[string]any)["unit"] = map[string]any{"type": "string"}
	got := strings.Join(checkSchema(schema), "\n")
	for _, want := range []string{"Model.license: in the schema, not in Go's norman.Model",
		"StatusFlag.id: required by the schema but omitempty in Go",
		"Model.inputs[].parameters[].unit: in the schema, not in Go's norman.ModelParam"} {
		if !strings.Contains(got, want) {
			t.Fatalf("the check misses %q; it says:\n%s", want, got)
		}
	}
}
