package repo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// fingerprintVersion prefixes the hashed text. Part of the persisted
// format: views are versioned by fingerprint, so changing it (or the text
// of computeParts) re-versions, and rebuilds, every view.
const fingerprintVersion = "featurelog view fingerprint v1"

// ComputeFingerprint returns a stable hash (32 hex digits) of what the view
// computes: its source, entities and typed join keys, timestamp field,
// feature start time, transform (expressions, inferred types and the types
// of the source columns they read),
// aggregation interval and features (names, functions, parameters,
// windows, types, in order). Metadata (description, owner, tags, ttl,
// online, offline, batch schedule, output stream) is not included: changing
// it updates the view in place. Two views with equal fingerprints compute
// the same values from the same log.
func (v *FeatureView) ComputeFingerprint() string { return hashParts(v.computeParts()) }

// LegacyFingerprint is the fingerprint builds before issue 10 computed,
// which left out the types of the source columns that only the
// transform's expressions read (see computePartsV1). It equals
// ComputeFingerprint for views without a transform. A catalog written by
// such a build holds it: the view keeps its version while its legacy
// fingerprint and the types of its transform's inputs are unchanged (see
// TransformInputs).
func (v *FeatureView) LegacyFingerprint() string { return hashParts(v.computePartsV1()) }

// TransformInputs spells the typed source columns the view's transform
// reads; "" without a transform.
func (v *FeatureView) TransformInputs() string { return v.transformInputs() }

func hashParts(parts []part) string {
	h := sha256.New()
	writeString(h, fingerprintVersion)
	for _, p := range parts {
		writeString(h, p.label)
		writeString(h, p.value)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// writeString writes s length-prefixed, so no two sequences of strings
// hash the same text.
func writeString(h hash.Hash, s string) {
	h.Write(binary.AppendUvarint(nil, uint64(len(s))))
	h.Write([]byte(s))
}
