package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// churn changes files in ws, one change per tick, until it made max
// changes or ctx ends, the way editors and build tools do: create, write
// in place, save through a temporary file and a rename, delete, and new
// directories. It returns the number of changes made.
func churn(ctx context.Context, ws string, every time.Duration, max int) (int, error) {
	rng := rand.New(rand.NewPCG(7, 11))
	tick := time.NewTicker(every)
	defer tick.Stop()
	n := 0
	for ; n < max; n++ {
		select {
		case <-ctx.Done():
			return n, nil
		case <-tick.C:
		}
		dir := filepath.Join(ws, "src", fmt.Sprintf("pkg%02d", rng.IntN(10)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return n, err
		}
		p := filepath.Join(dir, fmt.Sprintf("file%02d.go", rng.IntN(8)))
		body := fmt.Appendf(nil, "package soak\n\n// change %d\n", n)
		var err error
		switch rng.IntN(4) {
		case 0, 1:
			err = os.WriteFile(p, body, 0o644)
		case 2:
			tmp := p + ".swp"
			if err = os.WriteFile(tmp, body, 0o644); err == nil {
				err = os.Rename(tmp, p)
			}
		case 3:
			if err = os.Remove(p); os.IsNotExist(err) {
				err = nil
			}
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
