package schema_test

import (
	"fmt"
	"log"

	"github.com/featurelog/featurelog/schema"
)

// Values are converted from Go values against a declared type, and back.
func Example() {
	t, err := schema.ParseType("Array(Int64)")
	if err != nil {
		log.Fatal(err)
	}
	v, err := schema.FromAny([]any{1, 2, 3}, t)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t, v.Any())

	_, err = schema.FromAny("three", schema.ScalarType(schema.Int64))
	fmt.Println(err != nil)

	var null schema.Value
	fmt.Println(null.IsNull())
	// Output:
	// Array(Int64) [1 2 3]
	// true
	// true
}
