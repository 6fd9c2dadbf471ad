package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The manifest is streamed from packed entry blocks; it must be exactly
// what json.Marshal of the whole Manifest gives, for trees whose entries
// fill one block, several, or none at all besides the root.
func TestManifestStreamedEqualsMarshal(t *testing.T) {
	for _, files := range []int{0, 3, 9000} {
		t.Run(fmt.Sprint(files), func(t *testing.T) {
			dir := t.TempDir()
			for i := range files {
				// Names that JSON escapes (<, &, quotes, non-ASCII) too.
				name := filepath.Join(dir, fmt.Sprintf("d%02d", i%13), fmt.Sprintf("f<%d>&\"é\".txt", i))
				os.MkdirAll(filepath.Dir(name), 0o755)
				if err := os.WriteFile(name, []byte(name), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.Symlink("d00", filepath.Join(dir, "link"))
			os.WriteFile(filepath.Join(dir, "z"), []byte("zz"), 0o640)
			os.Link(filepath.Join(dir, "z"), filepath.Join(dir, "z2"))
			var buf bytes.Buffer
			st, err := Write(context.Background(), &buf, Options{Host: "h", Sources: []string{dir}, Now: time.Unix(1700000000, 0)})
			if err != nil {
				t.Fatal(err)
			}
			if st.Files != int64(files)+1 {
				t.Fatalf("archived %d files, want %d", st.Files, files)
			}
			tr := tar.NewReader(&buf)
			var raw []byte
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Name == ManifestName {
					raw, _ = io.ReadAll(tr)
				}
			}
			m, err := ParseManifest(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(m)
			if !bytes.Equal(raw, want) {
				t.Fatalf("streamed manifest differs from json.Marshal (%d vs %d bytes)", len(raw), len(want))
			}
			if len(m.Entries) < files+4 {
				t.Fatalf("%d entries for %d files", len(m.Entries), files)
			}
			var types []string
			for _, e := range m.Entries {
				switch {
				case strings.HasSuffix(e.Path, "/z"):
					sum := sha256.Sum256([]byte("zz"))
					if e.Type != TypeFile || e.Size != 2 || e.SHA256 != hex.EncodeToString(sum[:]) || e.Mode != "0640" {
						t.Errorf("entry z: %+v", e)
					}
					types = append(types, e.Type)
				case strings.HasSuffix(e.Path, "/z2"), strings.HasSuffix(e.Path, "/link"):
					types = append(types, e.Type+":"+e.Link[strings.LastIndex(e.Link, "/")+1:])
				}
			}
			if got := strings.Join(types, " "); got != "symlink:d00 file hardlink:z" {
				t.Errorf("special entries: %s", got)
			}
		})
	}
}
