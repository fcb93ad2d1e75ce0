package auth

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentAuthenticate runs Authenticate, Account and Accounts while
// other goroutines create, assign and delete accounts. Run it with -race.
func TestConcurrentAuthenticate(t *testing.T) {
	s, path := openTemp(t)
	stableKey, stable := mustCreate(t, s, "stable")
	require.NoError(t, s.AssignRole(stable.ID, "ads", Editor))

	const writers, rounds, readers = 4, 15, 4
	var stop atomic.Bool
	revoked := make(chan string, writers*rounds)
	var readersWG, writersWG sync.WaitGroup

	for range readers {
		readersWG.Go(func() {
			for !stop.Load() {
				p, err := s.Authenticate(stableKey)
				if !assert.NoError(t, err) || !assert.True(t, p.Allowed("ads", Editor)) {
					return
				}
				_, ok := s.Account(stable.ID)
				assert.True(t, ok)
				assert.NotEmpty(t, s.Accounts())
			}
		})
	}
	// Keys are checked by a goroutine other than the one that deleted them:
	// the channel orders DeleteAccount's return before the check.
	readersWG.Go(func() {
		for key := range revoked {
			_, err := s.Authenticate(key)
			assert.ErrorIs(t, err, ErrUnauthenticated, "revoked key still authenticates")
		}
	})
	for w := range writers {
		writersWG.Go(func() {
			for i := range rounds {
				key, acct, err := s.CreateAccount(fmt.Sprintf("w%d-%d", w, i), "")
				if !assert.NoError(t, err) {
					return
				}
				p, err := s.Authenticate(key)
				assert.NoError(t, err, "a created key works at once")
				assert.False(t, p.Allowed("ads", Viewer))
				assert.NoError(t, s.AssignRole(acct.ID, "ads", Owner))
				p, err = s.Authenticate(key)
				assert.NoError(t, err)
				assert.True(t, p.Allowed("ads", Owner), "an assigned role applies at once")
				assert.NoError(t, s.DeleteAccount(acct.ID))
				_, err = s.Authenticate(key)
				assert.ErrorIs(t, err, ErrUnauthenticated, "a deleted key fails at once")
				revoked <- key
			}
		})
	}
	writersWG.Wait()
	close(revoked)
	stop.Store(true)
	readersWG.Wait()

	require.Len(t, s.Accounts(), 1)
	s2, err := OpenStore(path)
	require.NoError(t, err)
	assert.Equal(t, s.Accounts(), s2.Accounts())
}
