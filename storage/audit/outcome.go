package audit

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coditect/coditect/storage/kv"
)

// Outcome is what a call made under an idempotency key left behind, kept
// beside the log's idempotency markers for IdempotencyWindow so that a
// retry of the call is answered with it instead of running again: first a
// reservation (Done false) naming the process that runs the call, then the
// call's result.
type Outcome struct {
	// Digest identifies the call's arguments; a retry must match it.
	Digest string `json:"d"`
	// Owner names the process running the call (a reservation's).
	Owner string `json:"o,omitempty"`
	// Done is set once the call's result is kept.
	Done bool `json:"done,omitempty"`
	// Result is the call's result as its maker encoded it.
	Result json.RawMessage `json:"r,omitempty"`
	// Time is when the outcome was stored (set by PutOutcome).
	Time time.Time `json:"-"`
}

// MaxOutcome bounds an outcome's encoding, in bytes.
const MaxOutcome = 64 << 10

// outcomeKey is where the outcome kept under key lives: an idempotency
// marker of its own ("outcome:" and the key; no event is appended under
// such a key), so the sweeper expires it with the others.
func (l *Log) outcomeKey(key string) ([]byte, error) {
	k, err := l.space.Idempotency("outcome:" + key)
	if err != nil {
		return nil, invalid("idempotency key: %v", err)
	}
	return k, nil
}

// GetOutcome reads, in tx, the outcome kept under key; ok is false when
// there is none within IdempotencyWindow.
func (l *Log) GetOutcome(tx kv.ReadTx, key string) (o Outcome, ok bool, err error) {
	k, err := l.outcomeKey(key)
	if err != nil {
		return Outcome{}, false, err
	}
	v, err := tx.Get(k)
	if err != nil || len(v) < 20 {
		return Outcome{}, false, err
	}
	// The value is laid out as the sweeper reads markers: 12 bytes of
	// event stamp (none: zero), the time, then the outcome.
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v[12:20])))
	if l.now().Sub(at) > IdempotencyWindow {
		return Outcome{}, false, nil
	}
	if err := json.Unmarshal(v[20:], &o); err != nil {
		return Outcome{}, false, fmt.Errorf("audit: outcome under %q is corrupt: %w", key, err)
	}
	o.Time = at
	return o, true, nil
}

// PutOutcome stores o under key in tx, stamped with the current time.
func (l *Log) PutOutcome(tx kv.Tx, key string, o Outcome) error {
	k, err := l.outcomeKey(key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(o)
	if err != nil {
		return invalid("outcome: %v", err)
	}
	if len(b) > MaxOutcome {
		return invalid("outcome of %d bytes exceeds %d", len(b), MaxOutcome)
	}
	v := make([]byte, 20, 20+len(b))
	binary.BigEndian.PutUint64(v[12:20], uint64(l.now().UnixNano()))
	tx.Set(k, append(v, b...))
	return nil
}

// ClearOutcome removes the outcome kept under key in tx.
func (l *Log) ClearOutcome(tx kv.Tx, key string) error {
	k, err := l.outcomeKey(key)
	if err != nil {
		return err
	}
	tx.Clear(k)
	return nil
}
