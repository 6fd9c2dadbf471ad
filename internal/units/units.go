// Package units renders sizes for people: the runner's messages and the
// checks' output say "1.2 GiB" the same way.
package units

import "fmt"

// Bytes renders n in binary units: "512 B", "1.5 KiB", "1.2 GiB".
func Bytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1024 || u == "PiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}
