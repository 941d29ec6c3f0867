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
	// Stamp is the commit of the transaction that stored the outcome, for
	// one stored by PutOutcomeStamped (zero otherwise): a result kept in
	// the transaction that made it names that commit's stamps with the
	// placeholder kv.IncompleteVersionstamp, and a replay puts this in.
	Stamp kv.Versionstamp `json:"-"`
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
	if vs, _ := kv.VersionstampFromBytes(v[:12]); !vs.IsZero() && vs.IsComplete() {
		o.Stamp = vs
	}
	return o, true, nil
}

// PutOutcome stores o under key in tx, stamped with the current time.
func (l *Log) PutOutcome(tx kv.Tx, key string, o Outcome) error {
	k, v, err := l.outcomeValue(key, o)
	if err != nil {
		return err
	}
	tx.Set(k, v)
	return nil
}

// PutOutcomeStamped is PutOutcome also recording the commit of tx, which
// GetOutcome returns as the outcome's Stamp.
func (l *Log) PutOutcomeStamped(tx kv.Tx, key string, o Outcome) error {
	k, v, err := l.outcomeValue(key, o)
	if err != nil {
		return err
	}
	inc := kv.IncompleteVersionstamp(0)
	copy(v, inc[:])
	tx.SetVersionstampedValue(k, v, 0)
	return nil
}

// outcomeValue returns the key and the value of o kept under key.
func (l *Log) outcomeValue(key string, o Outcome) (k, v []byte, err error) {
	if k, err = l.outcomeKey(key); err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, nil, invalid("outcome: %v", err)
	}
	if len(b) > MaxOutcome {
		return nil, nil, invalid("outcome of %d bytes exceeds %d", len(b), MaxOutcome)
	}
	v = make([]byte, 20, 20+len(b))
	binary.BigEndian.PutUint64(v[12:20], uint64(l.now().UnixNano()))
	return k, append(v, b...), nil
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
