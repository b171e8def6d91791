package fakebroker

import (
	"crypto/rand"
	"encoding/hex"
)

// nanoidAlphabet is nanoid's default URL-safe alphabet, which n8n uses for
// task ids (nanoid(8)): 64 symbols, "-" and "_" included (docs/protocol.md §5.3).
const nanoidAlphabet = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"

// nanoid returns n random symbols of nanoidAlphabet.
func nanoid(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go 1.24+)
	for i := range buf {
		buf[i] = nanoidAlphabet[buf[i]&63]
	}
	return string(buf)
}

// newGrantToken returns 32 random bytes as 64 hex characters, like n8n's
// grant tokens (docs/protocol.md §2.1).
func newGrantToken() string {
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
