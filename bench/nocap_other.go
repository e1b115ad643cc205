//go:build !linux

package main

import "errors"

// execWithoutNetAdmin is Linux's: elsewhere there is no CAP_NET_ADMIN to drop.
func execWithoutNetAdmin(bin string, args []string) error {
	return errors.New("dropping CAP_NET_ADMIN needs Linux")
}
