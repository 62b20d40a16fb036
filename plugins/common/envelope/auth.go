package envelope

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Authenticated envelopes. With a shared secret, the sender sets FlagAuth in
// the type byte and appends a tag: the first TagLen bytes of
// HMAC-SHA256(secret, every byte before the tag). The header's time (the
// replicator's receive time, or the send time of templates and probes) is
// covered by the tag; a receiver accepts the envelope only when that time is
// within its window of its own clock, so a captured envelope cannot be
// replayed later than the window (it can within it: the window is the
// trade-off between clock skew and replays).

// FlagAuth in the type byte marks an authenticated envelope.
const FlagAuth = 0x80

// TagLen is the length of an authenticated envelope's tag.
const TagLen = 16

// MinSecretLen is the shortest secret accepted.
const MinSecretLen = 16

// ErrUnauthenticated is wrapped by the errors of Verify.
var ErrUnauthenticated = errors.New("envelope: not authenticated")

// CheckSecret validates a configured secret ("" means none).
func CheckSecret(secret string) error {
	if secret != "" && len(secret) < MinSecretLen {
		return fmt.Errorf("secret: at least %d characters (give it as \"${FLOWLINE_REPLICA_SECRET}\")", MinSecretLen)
	}
	return nil
}

// Signer seals and verifies envelopes with one secret. It is not safe for
// concurrent use: give each goroutine its own.
type Signer struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

// NewSigner returns a signer for secret.
func NewSigner(secret string) *Signer {
	return &Signer{mac: hmac.New(sha256.New, []byte(secret))}
}

// Seal marks dg (a header from AppendHeader and its payload) authenticated
// and appends its tag. It does not allocate when dg has TagLen bytes of room.
func (s *Signer) Seal(dg []byte) []byte {
	if len(dg) < baseLen {
		return dg
	}
	dg[3] |= FlagAuth
	s.mac.Reset()
	s.mac.Write(dg)
	sum := s.mac.Sum(s.sum[:0])
	return append(dg, sum[:TagLen]...)
}

// Verify checks that data is an authenticated envelope whose tag is right
// and whose header time is within window of now (Unix nanoseconds).
func (s *Signer) Verify(data []byte, now int64, window time.Duration) error {
	if len(data) < baseLen+TagLen || data[3]&FlagAuth == 0 {
		return fmt.Errorf("%w: no tag", ErrUnauthenticated)
	}
	body := data[:len(data)-TagLen]
	s.mac.Reset()
	s.mac.Write(body)
	sum := s.mac.Sum(s.sum[:0])
	if !hmac.Equal(sum[:TagLen], data[len(body):]) {
		return fmt.Errorf("%w: wrong tag (another secret?)", ErrUnauthenticated)
	}
	at := int64(data[8])<<56 | int64(data[9])<<48 | int64(data[10])<<40 | int64(data[11])<<32 |
		int64(data[12])<<24 | int64(data[13])<<16 | int64(data[14])<<8 | int64(data[15])
	if d := time.Duration(now - at); d > window || d < -window {
		return fmt.Errorf("%w: sent %s from this clock, outside the %s window (a replay, or clocks apart)", ErrUnauthenticated, d.Round(time.Millisecond), window)
	}
	return nil
}
