package soak

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/coditect/coditect/storage/audit"
)

// feedClient follows the daemon's WebSocket feed like a dashboard: it
// subscribes from the head of the log, reads every event, and after a
// close other than the daemon's own shutdown resubscribes from the last
// event it has. It keeps no event, only a running hash of the ids in the
// order received, which the check compares with the log's.
type feedClient struct {
	url, token string
	sentinel   string   // the path whose event ends the run
	lat        *hist    // append -> receipt, shared by all clients
	subscribed chan any // closed on the first "subscribed"
	sawEnd     chan any // closed when the sentinel's event arrived

	start      string // the cursor the first subscription started after
	last       string // the last event id received
	n          int64  // events received
	sum        hash.Hash64
	reconnects int
	err        error // why the client stopped, when not by ctx or shutdown
}

// maxReconnects bounds the resubscriptions of one client.
const maxReconnects = 100

func newFeedClient(url, token, sentinel string, lat *hist) *feedClient {
	return &feedClient{url: "ws" + strings.TrimPrefix(url, "http") + "/api/v1/feed", token: token, sentinel: sentinel,
		lat: lat, subscribed: make(chan any), sawEnd: make(chan any), sum: fnv.New64a()}
}

// run follows the feed until ctx ends or the daemon closes it with 1001.
func (f *feedClient) run(ctx context.Context) {
	cursor := "head"
	for {
		err := f.follow(ctx, cursor)
		switch {
		case ctx.Err() != nil, websocket.CloseStatus(err) == websocket.StatusGoingAway:
			return
		case f.reconnects >= maxReconnects:
			f.err = fmt.Errorf("gave up after %d reconnects: %w", f.reconnects, err)
			return
		}
		f.reconnects++
		cursor = f.last
		if cursor == "" {
			cursor = f.start
		}
	}
}

func (f *feedClient) follow(ctx context.Context, cursor string) error {
	c, _, err := websocket.Dial(ctx, f.url, nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(32 << 20)
	if err := wsjson.Write(ctx, c, map[string]any{"type": "subscribe", "token": f.token, "cursor": cursor}); err != nil {
		return err
	}
	for {
		var m struct {
			Type   string        `json:"type"`
			Cursor string        `json:"cursor"`
			Events []audit.Event `json:"events"`
		}
		if err := wsjson.Read(ctx, c, &m); err != nil {
			return err
		}
		now := time.Now()
		switch m.Type {
		case "subscribed":
			select {
			case <-f.subscribed:
			default:
				f.start = m.Cursor
				close(f.subscribed)
			}
		case "events":
			for _, ev := range m.Events {
				f.lat.add(now.Sub(ev.Time))
				f.sum.Write([]byte(ev.ID + "\n"))
				f.n++
				f.last = ev.ID
				if strings.HasSuffix(ev.Path, f.sentinel) {
					select {
					case <-f.sawEnd:
					default:
						close(f.sawEnd)
					}
				}
			}
		default:
			return errors.New("unexpected feed message " + m.Type)
		}
	}
}
