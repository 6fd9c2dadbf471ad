//go:build !amd64 || purego

package crypt

// Without the amd64 assembly every SEIPD body takes the portable path.
const sealAsm = false

func sealBlocks(rk *[240]byte, ks *[16]byte, h *[5]uint32, dst, src []byte) {
	panic("crypt: sealBlocks without assembly")
}
