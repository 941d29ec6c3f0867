package watch

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coditect/coditect/storage/audit"
)

// A change's summary is what the audit log accepts whatever its path:
// valid UTF-8 of at most audit.MaxSummary bytes, also when the path's
// bytes are not UTF-8 and each grows to three bytes once replaced.
func TestSummaryFitsTheLog(t *testing.T) {
	for _, rel := range []string{
		"src/" + strings.Repeat("\xffa", 990),
		strings.Repeat("é", 1500),
		"src/main.go",
	} {
		s := summary(&Change{Kind: "file.created", Rel: rel})
		if len(s) > audit.MaxSummary || !utf8.ValidString(s) || !strings.HasPrefix(s, "created ") {
			t.Errorf("summary of a %d-byte path: %d bytes, valid UTF-8 %v: %.60q", len(rel), len(s), utf8.ValidString(s), s)
		}
	}
}
