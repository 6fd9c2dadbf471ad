// Command gen rewrites the gallery section of docs/GALLERY.md from the checks'
// golden files. Run from internal/gallery by `go generate`, or with the
// repository root as its argument (`make gallery`).
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/drym-backup/drym/internal/gallery"
)

func main() {
	root := filepath.Join("..", "..") // go generate runs in internal/gallery
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	if err := run(root); err != nil {
		fmt.Fprintln(os.Stderr, "gallery:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	path := filepath.Join(root, gallery.File)
	readme, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	section, err := gallery.Section(root)
	if err != nil {
		return err
	}
	out, err := gallery.Splice(readme, section)
	if err != nil {
		return err
	}
	if bytes.Equal(out, readme) {
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}
