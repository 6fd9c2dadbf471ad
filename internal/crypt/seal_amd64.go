//go:build amd64 && !purego

package crypt

import "golang.org/x/sys/cpu"

//go:generate go run gen_sealasm.go

// sealBlocks is in seal_amd64.s.
//
//go:noescape
func sealBlocks(rk *[240]byte, ks *[16]byte, h *[5]uint32, dst, src []byte)

func cpuHasSHA() bool

// sealAsm: the fused AES-256-CFB and SHA-1 loop needs AES-NI, the SHA
// extensions, SSSE3 (PSHUFB) and SSE4.1 (PINSRD, PEXTRD).
var sealAsm = cpu.X86.HasAES && cpu.X86.HasSSSE3 && cpu.X86.HasSSE41 && cpuHasSHA()
