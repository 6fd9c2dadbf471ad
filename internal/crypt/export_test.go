package crypt

import (
	"syscall"

	"github.com/ProtonMail/go-crypto/openpgp"
)

type openpgpEntity = openpgp.Entity

func syscallUmask(m int) int { return syscall.Umask(m) }
