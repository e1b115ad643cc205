package main

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"runtime"
)

// pathCipher holds the samples of the cipher figure: measured in the
// harness itself, not through a path.
const pathCipher = "aes-gcm"

// recordSize is what TLS 1.3 seals at a time.
const recordSize = 16 << 10

// cipherCost measures what encrypting and decrypting size bytes with
// AES-128-GCM in 16 KiB records (TLS 1.3's) costs one core: the CPU time,
// in seconds per GiB, of sealing every record and opening it again. Any
// encrypted tunnel pays at least this on top of moving the bytes (the
// plain relay's figure), whatever its protocol.
func cipherCost(size int64) (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		return 0, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return 0, err
	}
	plain := make([]byte, recordSize)
	sealed := make([]byte, 0, recordSize+aead.Overhead())
	opened := make([]byte, 0, recordSize)
	nonce := make([]byte, aead.NonceSize())
	before, err := threadCPU()
	if err != nil {
		return 0, err
	}
	for done := int64(0); done < size; done += recordSize {
		nonce[len(nonce)-1]++
		sealed = aead.Seal(sealed[:0], nonce, plain, nil)
		if opened, err = aead.Open(opened[:0], nonce, sealed, nil); err != nil {
			return 0, fmt.Errorf("opening a record just sealed: %w", err)
		}
	}
	after, err := threadCPU()
	if err != nil {
		return 0, err
	}
	return (after - before).Seconds() / (float64(size) / (1 << 30)), nil
}
