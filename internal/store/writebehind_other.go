//go:build !linux

package store

import (
	"errors"
	"os"
)

var errNoWriteBehind = errors.New("sync_file_range is Linux-only")

func startWriteback(*os.File, int64, int64) error { return errNoWriteBehind }

func waitWriteback(*os.File, int64, int64) error { return errNoWriteBehind }
