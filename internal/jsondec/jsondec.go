// Package jsondec pools jsontext decoders over in-memory bodies. A decoder
// carries buffers worth a few kilobytes; request handlers on hot paths take
// one per request and give it back.
//
//	d := jsondec.Get(body)
//	defer jsondec.Put(d)
//	tok, err := d.ReadToken()
//
// jsontext rejects duplicate object names and invalid UTF-8 by default;
// callers check for trailing data themselves (ReadToken returns io.EOF at
// the end of a single value).
package jsondec

import (
	"bytes"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// Decoder is a pooled decoder reading one in-memory body.
type Decoder struct {
	*jsontext.Decoder
	r bytes.Reader
}

var pool = sync.Pool{New: func() any {
	d := &Decoder{}
	d.Decoder = jsontext.NewDecoder(&d.r)
	return d
}}

// Get returns a decoder reading data. data must stay unchanged until Put.
func Get(data []byte) *Decoder {
	d := pool.Get().(*Decoder)
	d.r.Reset(data)
	d.Reset(&d.r)
	return d
}

// Put returns d to the pool; d must not be used afterwards.
func Put(d *Decoder) {
	d.r.Reset(nil) // drop the reference to the body
	pool.Put(d)
}
