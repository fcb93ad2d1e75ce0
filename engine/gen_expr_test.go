package engine_test

// Transform expressions for generated repos (gen_repo_test.go). Each has
// an evaluator that mirrors expr-lang's semantics: integer arithmetic
// wraps, / divides as floats, % truncates, len counts runes, string()
// prints integers in decimal.

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/featurelog/featurelog/schema"
)

// genCols filters cols to those of the kinds.
func genCols(cols []genCol, kinds ...schema.Kind) []genCol {
	var out []genCol
	for _, c := range cols {
		if c.t.Kind != schema.Array && slices.Contains(kinds, c.t.Kind) {
			out = append(out, c)
		}
	}
	return out
}

// genExprOf draws an expression of kind want over cols, or nil when cols
// offer none.
func genExprOf(r *rand.Rand, cols []genCol, want schema.Kind) *genExpr {
	ints := genCols(cols, schema.Int64, schema.Int32)
	floats := genCols(cols, schema.Float64, schema.Float32)
	nums := genCols(cols, schema.Int64, schema.Int32, schema.Float64, schema.Float32)
	strs := genCols(cols, schema.String)
	pick := func(cs []genCol) genCol { return cs[r.Intn(len(cs))] }
	var opts []func() *genExpr
	switch want {
	case schema.Int64:
		if len(ints) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, b := pick(ints), pick(ints)
					return genBin(a.name+" + "+b.name, []string{a.name, b.name}, func(x, y schema.Value) schema.Value { return schema.Int(x.I + y.I) })
				},
				func() *genExpr {
					a, k := pick(ints), int64(2+r.Intn(4))
					return genUn(fmt.Sprintf("%s * %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Int(x.I * k) })
				},
				func() *genExpr {
					a, k := pick(ints), int64(2+r.Intn(6))
					return genUn(fmt.Sprintf("%s %% %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Int(x.I % k) })
				},
				func() *genExpr {
					a, k := pick(ints), int64(r.Intn(10))
					return genUn(fmt.Sprintf("%s - %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Int(x.I - k) })
				})
		}
		if len(strs) > 0 {
			opts = append(opts, func() *genExpr {
				s := pick(strs)
				return genUn("len("+s.name+")", s.name, func(x schema.Value) schema.Value { return schema.Int(int64(utf8.RuneCountInString(x.S))) })
			})
		}
		if len(floats) > 0 {
			opts = append(opts, func() *genExpr {
				x, c := pick(floats), float64(r.Intn(80))
				return genUn(fmt.Sprintf("%s > %.1f ? 1 : 0", x.name, c), x.name, func(v schema.Value) schema.Value {
					if v.F > c {
						return schema.Int(1)
					}
					return schema.Int(0)
				})
			}, func() *genExpr {
				x := pick(floats)
				return genUn("int("+x.name+")", x.name, func(v schema.Value) schema.Value { return schema.Int(int64(v.F)) })
			})
		}
	case schema.Float64:
		if len(floats) > 0 {
			opts = append(opts,
				func() *genExpr {
					x, c := pick(floats), []float64{2.5, 0.5, -1.5, 2}[r.Intn(4)]
					return genUn(fmt.Sprintf("%s * %s", x.name, strconv.FormatFloat(c, 'f', -1, 64)+genDot(c)), x.name, func(v schema.Value) schema.Value { return schema.Float(v.F * c) })
				},
				func() *genExpr {
					x, c := pick(floats), 1.25
					return genUn(x.name+" - 1.25", x.name, func(v schema.Value) schema.Value { return schema.Float(v.F - c) })
				},
				func() *genExpr {
					x := pick(floats)
					return genUn(x.name+" ** 2", x.name, func(v schema.Value) schema.Value { return schema.Float(math.Pow(v.F, 2)) })
				},
				func() *genExpr {
					x := pick(floats)
					return genUn("abs("+x.name+")", x.name, func(v schema.Value) schema.Value { return schema.Float(math.Abs(v.F)) })
				})
		}
		if len(nums) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, b := pick(nums), pick(nums)
					return genBin(a.name+" + "+b.name+" * 1.0", []string{a.name, b.name}, func(x, y schema.Value) schema.Value { return schema.Float(aggNum(x) + aggNum(y)*1.0) })
				})
		}
		if len(ints) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, k := pick(ints), int64(2+r.Intn(3))
					return genUn(fmt.Sprintf("%s / %d", a.name, k), a.name, func(x schema.Value) schema.Value { return schema.Float(float64(x.I) / float64(k)) })
				},
				func() *genExpr {
					a := pick(ints)
					return genUn("float("+a.name+")", a.name, func(x schema.Value) schema.Value { return schema.Float(float64(x.I)) })
				})
		}
	case schema.String:
		if len(strs) > 0 {
			opts = append(opts,
				func() *genExpr {
					s, lit := pick(strs), []string{"_x", "-", "!"}[r.Intn(3)]
					return genUn(s.name+" + "+strconv.Quote(lit), s.name, func(v schema.Value) schema.Value { return schema.Str(v.S + lit) })
				},
				func() *genExpr {
					s := pick(strs)
					return genUn("upper("+s.name+")", s.name, func(v schema.Value) schema.Value { return schema.Str(strings.ToUpper(v.S)) })
				},
				func() *genExpr {
					a, b := pick(strs), pick(strs)
					return genBin(a.name+" + "+b.name, []string{a.name, b.name}, func(x, y schema.Value) schema.Value { return schema.Str(x.S + y.S) })
				})
		}
		if len(ints) > 0 {
			opts = append(opts,
				func() *genExpr {
					a, k := pick(ints), int64(r.Intn(10))
					return genUn(fmt.Sprintf("%s > %d ? \"hi\" : \"lo\"", a.name, k), a.name, func(v schema.Value) schema.Value {
						if v.I > k {
							return schema.Str("hi")
						}
						return schema.Str("lo")
					})
				},
				func() *genExpr {
					a := pick(ints)
					return genUn("string("+a.name+")", a.name, func(v schema.Value) schema.Value { return schema.Str(strconv.FormatInt(v.I, 10)) })
				})
		}
	case schema.Bool:
		return genBoolExpr(r, cols)
	}
	if len(opts) == 0 {
		return nil
	}
	return opts[r.Intn(len(opts))]()
}

// genDot makes a whole float literal a float in expr ("2" is an int).
func genDot(c float64) string {
	if c == math.Trunc(c) {
		return ".0"
	}
	return ""
}

// genBoolExpr draws a comparison, a conjunction, or a Bool column.
func genBoolExpr(r *rand.Rand, cols []genCol) *genExpr {
	ints := genCols(cols, schema.Int64, schema.Int32)
	floats := genCols(cols, schema.Float64, schema.Float32)
	strs := genCols(cols, schema.String)
	bools := genCols(cols, schema.Bool)
	pick := func(cs []genCol) genCol { return cs[r.Intn(len(cs))] }
	var opts []func() *genExpr
	if len(ints) > 0 {
		opts = append(opts, func() *genExpr {
			a, k := pick(ints), int64(r.Intn(8)-3)
			return genUn(fmt.Sprintf("%s >= %d", a.name, k), a.name, func(v schema.Value) schema.Value { return schema.BoolVal(v.I >= k) })
		})
	}
	if len(floats) > 0 {
		opts = append(opts, func() *genExpr {
			x, c := pick(floats), float64(20+r.Intn(70))
			return genUn(fmt.Sprintf("%s < %.1f", x.name, c), x.name, func(v schema.Value) schema.Value { return schema.BoolVal(v.F < c) })
		})
	}
	if len(strs) > 0 {
		opts = append(opts, func() *genExpr {
			s, lit := pick(strs), fmt.Sprintf("c%d", r.Intn(3))
			return genUn(fmt.Sprintf("%s != %q", s.name, lit), s.name, func(v schema.Value) schema.Value { return schema.BoolVal(v.S != lit) })
		})
	}
	if len(ints) > 0 && len(floats) > 0 {
		opts = append(opts, func() *genExpr {
			a, x := pick(ints), pick(floats)
			return genBin(fmt.Sprintf("%s > 0 || %s > 40.0", a.name, x.name), []string{a.name, x.name}, func(p, q schema.Value) schema.Value {
				return schema.BoolVal(p.I > 0 || q.F > 40)
			})
		})
	}
	if len(bools) > 0 {
		opts = append(opts, func() *genExpr {
			b := pick(bools)
			return genUn("!"+b.name, b.name, func(v schema.Value) schema.Value { return schema.BoolVal(!v.Bool()) })
		}, func() *genExpr {
			b := pick(bools)
			return genUn(b.name, b.name, func(v schema.Value) schema.Value { return v })
		})
	}
	if len(opts) == 0 {
		return nil
	}
	return opts[r.Intn(len(opts))]()
}

func genUn(text, in string, f func(schema.Value) schema.Value) *genExpr {
	return &genExpr{text: text, inputs: []string{in}, eval: func(row map[string]schema.Value) schema.Value { return f(row[in]) }}
}

func genBin(text string, in []string, f func(a, b schema.Value) schema.Value) *genExpr {
	return &genExpr{text: text, inputs: slices.Compact(slices.Clone(in)), eval: func(row map[string]schema.Value) schema.Value {
		return f(row[in[0]], row[in[1]])
	}}
}
