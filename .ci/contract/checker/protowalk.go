package main

// walkMessage compares a decoded JSON tree with a protobuf message descriptor and reports, with the
// field path, every key the message does not define and every value of the wrong JSON type. It follows
// protojson/jsonpb rules: a field may be spelled with its proto name or its JSON name; well-known
// wrapper types take the bare JSON value; Struct/Value fields are free-form.

import (
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

func walkMessage(v interface{}, md protoreflect.MessageDescriptor, path string) []finding {
	if v == nil {
		return nil
	}
	if f, handled := checkWellKnown(v, md, path); handled {
		return f
	}
	obj, ok := v.(map[string]interface{})
	if !ok {
		return []finding{{Path: path, Message: fmt.Sprintf("expected an object (%s), got %s", md.Name(), jsonType(v))}}
	}
	var out []finding
	fields := md.Fields()
	for _, key := range sortedKeys(obj) {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		child := join(path, key)
		if fd == nil {
			out = append(out, finding{Path: child, Message: fmt.Sprintf("unknown field (not in %s)", md.FullName())})
			continue
		}
		out = append(out, walkField(obj[key], fd, child)...)
	}
	return out
}

func walkField(v interface{}, fd protoreflect.FieldDescriptor, path string) []finding {
	if v == nil {
		return nil
	}
	switch {
	case fd.IsMap():
		m, ok := v.(map[string]interface{})
		if !ok {
			return []finding{{Path: path, Message: "expected an object (map), got " + jsonType(v)}}
		}
		var out []finding
		for _, k := range sortedKeys(m) {
			out = append(out, walkSingular(m[k], fd.MapValue(), join(path, k))...)
		}
		return out
	case fd.IsList():
		l, ok := v.([]interface{})
		if !ok {
			return []finding{{Path: path, Message: "expected a list, got " + jsonType(v)}}
		}
		var out []finding
		for i, e := range l {
			out = append(out, walkSingular(e, fd, fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	default:
		return walkSingular(v, fd, path)
	}
}

func walkSingular(v interface{}, fd protoreflect.FieldDescriptor, path string) []finding {
	if v == nil {
		return nil
	}
	bad := func(want string) []finding {
		return []finding{{Path: path, Message: fmt.Sprintf("expected %s, got %s", want, jsonType(v))}}
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return walkMessage(v, fd.Message(), path)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return bad("a boolean")
		}
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return bad("a string")
		}
	case protoreflect.EnumKind:
		return checkEnum(v, fd.Enum(), path)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if !isNumberish(v, false) {
			return bad("a number")
		}
	default: // integer kinds
		if !isNumberish(v, true) {
			return bad("an integer")
		}
	}
	return nil
}

func checkEnum(v interface{}, ed protoreflect.EnumDescriptor, path string) []finding {
	switch x := v.(type) {
	case string:
		if ed.Values().ByName(protoreflect.Name(x)) != nil {
			return nil
		}
		names := make([]string, 0, ed.Values().Len())
		for i := 0; i < ed.Values().Len(); i++ {
			names = append(names, string(ed.Values().Get(i).Name()))
		}
		return []finding{{Path: path, Message: fmt.Sprintf("unsupported value %q for %s; one of: %s",
			x, ed.FullName(), strings.Join(names, ", "))}}
	case float64:
		if ed.Values().ByNumber(protoreflect.EnumNumber(int32(x))) != nil && x == math.Trunc(x) {
			return nil
		}
	}
	return []finding{{Path: path, Message: fmt.Sprintf("invalid value %v for enum %s", v, ed.FullName())}}
}

// checkWellKnown handles the message types whose JSON form is not an object of their fields.
func checkWellKnown(v interface{}, md protoreflect.MessageDescriptor, path string) ([]finding, bool) {
	expect := func(ok bool, want string) ([]finding, bool) {
		if ok {
			return nil, true
		}
		return []finding{{Path: path, Message: fmt.Sprintf("expected %s (%s), got %s", want, md.FullName(), jsonType(v))}}, true
	}
	switch md.FullName() {
	case "google.protobuf.Value":
		return nil, true
	case "google.protobuf.Struct":
		_, ok := v.(map[string]interface{})
		return expect(ok, "an object")
	case "google.protobuf.ListValue":
		_, ok := v.([]interface{})
		return expect(ok, "a list")
	case "google.protobuf.BoolValue":
		_, ok := v.(bool)
		return expect(ok, "a boolean")
	case "google.protobuf.StringValue", "google.protobuf.BytesValue", "google.protobuf.Timestamp",
		"google.protobuf.FieldMask":
		_, ok := v.(string)
		return expect(ok, "a string")
	case "google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value":
		return expect(isNumberish(v, true), "an integer")
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
		return expect(isNumberish(v, false), "a number")
	case "google.protobuf.Duration":
		s, ok := v.(string)
		return expect(ok && strings.HasSuffix(s, "s"), `a duration string such as "1.5s"`)
	case "google.protobuf.Any", "google.protobuf.Empty":
		_, ok := v.(map[string]interface{})
		return expect(ok, "an object")
	case "istio.operator.v1alpha1.IntOrString":
		// apis.IntOrString implements UnmarshalJSONPB: a bare integer or string.
		_, isStr := v.(string)
		return expect(isStr || isNumberish(v, true), "an integer or a string")
	}
	return nil, false
}

func isNumberish(v interface{}, integer bool) bool {
	switch x := v.(type) {
	case float64:
		return !integer || x == math.Trunc(x)
	case string: // protojson accepts quoted numbers
		var f float64
		_, err := fmt.Sscan(x, &f)
		return err == nil && (!integer || f == math.Trunc(f))
	}
	return false
}

func jsonType(v interface{}) string {
	switch v.(type) {
	case map[string]interface{}:
		return "an object"
	case []interface{}:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
