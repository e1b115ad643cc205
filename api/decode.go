package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"unicode/utf8"
)

// Decode decodes b into v strictly, the way the daemon reads request bodies
// and its own JSON files: b must be exactly one JSON value (white space
// around it is fine) of valid UTF-8, and every object field must be known
// to v. encoding/json alone would quietly rewrite invalid UTF-8 to U+FFFD
// and ignore whatever follows the value. Errors are worded for the user and
// name the field when one is at fault.
func Decode(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty, want a JSON object")
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("field %q must be %s, got a JSON %s", te.Field, kindName(te.Type), te.Value)
		}
		return err
	}
	if off := dec.InputOffset(); len(bytes.TrimSpace(b[off:])) != 0 {
		return fmt.Errorf("unexpected data after the JSON value at offset %d: send exactly one", off)
	}
	return nil
}

// firstInvalidUTF8 is the offset of b's first byte that does not start a
// valid UTF-8 sequence.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// kindName names a Go type the way a JSON user would.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return "a " + t.String()
}
