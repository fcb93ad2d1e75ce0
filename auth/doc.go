// Package auth holds the service accounts of a data directory, their API
// keys and their roles per workspace (SPEC §8), and authenticates requests
// (SPEC §2: 401 for a missing or invalid key, 403 for a missing role).
//
//	s, err := auth.OpenStore(filepath.Join(dataDir, "accounts.json"))
//	key, acct, err := s.CreateAccount("ads-ingest", "writes impressions")
//	fmt.Println("API Key:", key) // shown once; only its SHA-256 is stored
//	err = s.AssignRole(acct.ID, "ads", auth.Editor)
//
//	// On every request:
//	key, err := auth.ParseAuthorization(r.Header.Get("Authorization"))
//	if err != nil {
//		return http401(err) // ErrNoCredentials or ErrMalformedAuthorization
//	}
//	p, err := s.Authenticate(key)
//	if err != nil {
//		return http401(err) // ErrUnauthenticated
//	}
//	if !p.Allowed("ads", auth.Editor) {
//		return http403("ingest into workspace ads needs the editor role")
//	}
//
// # Roles
//
// Viewer < Editor < Owner, each per workspace. A viewer may read features,
// an editor may also ingest, an owner may also apply, delete keys and run
// jobs. Owner of workspace A has no rights in workspace B.
//
// # API keys
//
// A key is "fl_" + account ID (16 lowercase hex) + "_" + 32 random bytes in
// lowercase base32 without padding: 72 characters. The ID inside the key
// lets Authenticate find the account with one map lookup; the secret is
// checked by comparing SHA-256(key) with the stored hash in constant time.
// Keys are high-entropy, so a plain SHA-256 is enough (no salt or slow
// hash, which would only add latency to every request).
//
// # The account store file
//
// One JSON file, rewritten atomically on every change (temp file, fsync,
// rename, fsync of the directory), mode 0600 (docs/format/accounts.md
// specifies it):
//
//	{
//	  "version": 1,
//	  "accounts": [
//	    {
//	      "id": "3f9c2a7d1b0e4c85",
//	      "name": "ads-ingest",
//	      "description": "writes impressions",
//	      "created_at": "2026-11-21T05:00:00.123456789Z",
//	      "key_sha256": "<64 hex: SHA-256 of the whole API key>",
//	      "roles": {"ads": "editor"}
//	    }
//	  ]
//	}
//
// Accounts are written oldest first. Unknown fields, trailing data or an
// invalid value make the file corrupt (*CorruptStoreError); a version
// other than 1 gives ErrUnsupportedVersion. The key itself is never
// written anywhere.
//
// # Caveats
//
//   - Authenticate and the other reads see an immutable snapshot through an
//     atomic pointer: no lock, no allocation. A request authenticated just
//     before DeleteAccount returned may still complete; none authenticated
//     after it can.
//   - The store assumes one process owns the file at a time (the data
//     directory lock, package dirlock). Reload picks up changes another
//     process made while this one was not writing.
//   - If a write fails after the new file replaced the old one (the
//     directory fsync failed), memory and disk may disagree: mutations then
//     fail with ErrStoreUncertain until Reload succeeds.
package auth
