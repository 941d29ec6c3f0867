package tools

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/agent"
	"github.com/coditect/coditect/storage/project"
	"github.com/coditect/coditect/storage/task"
)

// --- tasks ---

// taskOut is a task as the tools show it.
type taskOut struct {
	TaskID      string `json:"task_id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	// Project is the name of the task's project; empty for a task of the
	// whole tenant.
	Project   string    `json:"project,omitempty"`
	State     string    `json:"state"`
	Assignee  string    `json:"assignee,omitempty"`
	Version   int64     `json:"version"`
	CreatedBy string    `json:"created_by"`
	Updated   time.Time `json:"updated"`
	// Priority, BlockedBy, Parent and Skills place the task in the graph
	// (storage/task); Ready says it is open with every blocker done, and
	// Waiting lists the blockers not done.
	Priority  int      `json:"priority,omitempty"`
	BlockedBy []string `json:"blocked_by,omitempty"`
	Parent    string   `json:"parent,omitempty"`
	Skills    []string `json:"skills,omitempty"`
	Ready     bool     `json:"ready,omitempty"`
	Waiting   []string `json:"waiting,omitempty"`
	// Next are the states the caller may move the task to now, at Version
	// ("claimed" through task_claim, the others through task_update), in
	// the replies that change a task.
	Next []string `json:"next,omitempty"`
}

// taskSchema lists the fields a model acts on; the others (title,
// assignee, blocked_by...) are in the result without a schema
// entry, to keep the coord toolset within its tools/list budget.
const taskSchema = `{"type":"object","required":["task_id","version"],"properties":{
	"task_id":{"type":"string"},"state":{"type":"string"},"version":{"type":"integer"},"ready":{"type":"boolean"},"next":{"type":"array","items":{"type":"string"}}}}`

// maxListedDescription bounds a description in task_list; task_claim
// returns it whole.
const maxListedDescription = 1000

// taskOut shows a task with its project's name.
func (c *Call) taskOut(ctx context.Context, t task.Task) taskOut {
	return taskOut{TaskID: t.ID, Title: t.Title, Description: t.Description, Project: c.projectName(ctx, t.Project), State: string(t.State),
		Assignee: t.Assignee, Version: t.Version, CreatedBy: t.CreatedBy, Updated: t.Updated.UTC(),
		Priority: t.Priority, BlockedBy: t.BlockedBy, Parent: t.Parent, Skills: t.Skills, Ready: t.Ready, Waiting: t.Waiting}
}

// movedOut shows a task a call just changed, with the caller's next
// moves (Next and the sentence saying how).
func (c *Call) movedOut(ctx context.Context, t task.Task) (taskOut, string) {
	out := c.taskOut(ctx, t)
	var next string
	out.Next, next = c.moves(ctx, t)
	return out, next
}

// line shows a task in a listing, its assignee by id and name (names) or
// as "you" (me).
func (t taskOut) line(names map[string]string, me string) string {
	who := "unassigned"
	switch {
	case t.Assignee == "":
	case t.Assignee == me:
		who = "assigned to you"
	case names[t.Assignee] != "":
		who = fmt.Sprintf("assigned to agent %s (%s)", t.Assignee, names[t.Assignee])
	default:
		who = "assigned to agent " + t.Assignee
	}
	where := ""
	if t.Project != "" {
		where = " in project " + t.Project
	}
	graph := ""
	if t.Priority != 0 {
		graph += fmt.Sprintf(" priority %d", t.Priority)
	}
	switch {
	case t.Ready:
		graph += " ready"
	case len(t.Waiting) > 0:
		graph += " waiting on " + strings.Join(t.Waiting, ", ")
	}
	return fmt.Sprintf("%s v%d %s%s%s, %s: %s", t.TaskID, t.Version, t.State, graph, where, who, t.Title)
}

// projectArg resolves an optional project argument (a name or id) to the
// project's id; "" when it is not sent.
func (c *Call) projectArg(ctx context.Context, ref string) (string, error) {
	if err := c.text("project", ref, project.MaxName, false, true); err != nil || ref == "" {
		return "", err
	}
	p, err := project.Get(ctx, c.Scope, ref)
	if err != nil {
		return "", c.projectError(ctx, ref, err)
	}
	c.nameProject(p)
	return p.ID, nil
}

// taskID checks a task_id argument.
func (c *Call) taskID(v string) (string, error) {
	if v == "" {
		return "", c.argError("%q is required: use a task_id from task_list or task_create", "task_id")
	}
	if err := c.text("task_id", v, maxIDArg, true, true); err != nil {
		return "", err
	}
	return v, nil
}

// version checks a version argument.
func (c *Call) version(v int64) (int64, error) {
	if v <= 0 {
		return 0, c.argError("%q is required: send the task's version as task_list showed it (it grows with every change)", "version")
	}
	return v, nil
}

// taskAt checks the task_id and version arguments of a change to a task.
func (c *Call) taskAt(taskID string, v int64) (string, int64, error) {
	id, err := c.taskID(taskID)
	if err != nil {
		return "", 0, err
	}
	version, err := c.version(v)
	return id, version, err
}

// party names who id is for a model: "you", "agent <id> (<name>)" or, for
// a task a person created, "user <id>".
func (c *Call) party(ctx context.Context, id string) string {
	if id != "" && id == c.Scope.Principal().Agent {
		return "you"
	}
	if a, err := agent.Get(ctx, c.Scope, id); err == nil {
		return fmt.Sprintf("agent %s (%s)", a.ID, a.Name)
	}
	if strings.HasPrefix(id, "ag_") {
		return "agent " + id
	}
	return "user " + id
}

// holding says whose a task is: "assigned to you", "assigned to agent …"
// or "unassigned".
func (c *Call) holding(ctx context.Context, t task.Task) string {
	if t.Assignee == "" {
		return "unassigned"
	}
	return "assigned to " + c.party(ctx, t.Assignee)
}

// moves returns the states the caller may move t to now, at t.Version, in
// life order — exactly those task.MayClaim (claimed, through task_claim)
// and task.Next (the others, through task_update) accept — and a sentence
// saying how.
func (c *Call) moves(ctx context.Context, t task.Task) ([]string, string) {
	p := c.Scope.Principal()
	next := task.Next(t, p)
	claim := task.MayClaim(t, p)
	var out, upd []string
	for _, st := range task.States() {
		switch {
		case st == task.Claimed && claim:
			out = append(out, string(st))
		case slices.Contains(next, st):
			out = append(out, string(st))
			upd = append(upd, string(st))
		}
	}
	var ways []string
	if claim {
		ways = append(ways, fmt.Sprintf("task_claim with version %d", t.Version))
	}
	if len(upd) > 0 {
		ways = append(ways, fmt.Sprintf("task_update with version %d and state %s", t.Version, orList(upd)))
	}
	switch {
	case len(ways) > 0:
		return out, "Next: " + strings.Join(ways, ", or ") + "."
	case task.MayMove(t, p) != nil:
		return nil, fmt.Sprintf("It is %s's now: only they, its creator (%s) or a person may move it.", c.party(ctx, t.Assignee), c.party(ctx, t.CreatedBy))
	}
	return nil, fmt.Sprintf("It is %s: no move is left.", t.State)
}

// orList renders "a", "a or b", "a, b or c".
func orList(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}

// pickAnother is what a caller that cannot have a task does instead.
const pickAnother = "pick another open task with task_list (state open)"

// heldByOther tells a caller that t is another's: whose, who else may move
// it, and what to do instead.
func (c *Call) heldByOther(ctx context.Context, t task.Task) string {
	who := c.party(ctx, t.Assignee)
	return fmt.Sprintf("it is %s and assigned to %s, and only its assignee, its creator (%s) or a person through the dashboard or CLI may move it: "+
		"ask %s with message_send, or %s", t.State, who, c.party(ctx, t.CreatedBy), who, pickAnother)
}

// taskError rewrites the task layer's refusals of a move of task id to
// state to (claimed for a claim) for a model: what the task is now, whose
// it is, and the call that will succeed.
func (c *Call) taskError(ctx context.Context, err error, id string, to task.State) error {
	p := c.Scope.Principal()
	var ve *task.VersionError
	if errors.As(err, &ve) {
		cur := ve.Current
		if task.MayMove(cur, p) != nil {
			return &toolError{err: err, msg: fmt.Sprintf("task %s changed since version %d (now version %d): %s", id, ve.Expected, cur.Version, c.heldByOther(ctx, cur))}
		}
		msg := fmt.Sprintf("task %s changed since version %d: it is now at version %d, %s and %s.", id, ve.Expected, cur.Version, cur.State, c.holding(ctx, cur))
		retry := slices.Contains(task.Next(cur, p), to)
		if to == task.Claimed {
			retry = task.MayClaim(cur, p)
		}
		switch {
		case retry:
			msg += fmt.Sprintf(" If your change still fits, call again with version %d.", cur.Version)
		case to == task.Claimed && cur.Assignee == p.Agent:
			msg += " It is already yours."
		case to == task.Claimed && cur.Assignee != "":
			msg += fmt.Sprintf(" To work on something else, %s; to ask about it, message %s with message_send.", pickAnother, c.party(ctx, cur.Assignee))
		default:
			msg += fmt.Sprintf(" It cannot move to %s now.", to)
		}
		_, next := c.moves(ctx, cur)
		return &toolError{err: err, msg: msg + " " + next}
	}
	if errors.Is(err, task.ErrNotFound) {
		return &toolError{err: err, msg: fmt.Sprintf("no task %s in your tenant: find task ids with task_list", id)}
	}
	var fe *task.ForbiddenError
	if errors.As(err, &fe) {
		return &toolError{err: err, msg: fmt.Sprintf("task %s is not yours to move: %s", id, c.heldByOther(ctx, fe.Task))}
	}
	var te *task.TransitionError
	if errors.As(err, &te) {
		cur := te.Task
		_, next := c.moves(ctx, cur)
		if te.To == task.Claimed {
			switch {
			case cur.Assignee != "" && cur.Assignee == c.Scope.Principal().Agent:
				return &toolError{err: err, msg: fmt.Sprintf("task %s is already yours (%s, version %d). %s", id, cur.State, cur.Version, next)}
			case task.Held(cur) && task.MayMove(cur, c.Scope.Principal()) != nil:
				return &toolError{err: err, msg: fmt.Sprintf("task %s cannot be claimed: %s", id, c.heldByOther(ctx, cur))}
			case task.Held(cur):
				return &toolError{err: err, msg: fmt.Sprintf("task %s cannot be claimed: it is %s (version %d) and %s; as its creator you may still move it. %s",
					id, cur.State, cur.Version, c.holding(ctx, cur), next)}
			}
			return &toolError{err: err, msg: fmt.Sprintf("task %s is %s (version %d, %s): only open or blocked tasks can be claimed; %s", id, cur.State, cur.Version, c.holding(ctx, cur), pickAnother)}
		}
		return &toolError{err: err, msg: fmt.Sprintf("task %s is %s (version %d, %s) and cannot move to %s. %s", id, te.From, te.Task.Version, c.holding(ctx, te.Task), te.To, next)}
	}
	return err
}

type taskCreateArgs struct {
	actingAs
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Project     string   `json:"project"`
	Priority    int      `json:"priority"`
	BlockedBy   []string `json:"blocked_by"`
	Parent      string   `json:"parent"`
	Skills      []string `json:"skills"`
}

// graphProps are the task graph's arguments of task_create and task_update.
const graphProps = `"priority":{"type":"integer"},"blocked_by":{"type":"array","items":{"type":"string"}},"parent":{"type":"string"},"skills":{"type":"array","items":{"type":"string"}},`

func taskCreateTool() *Tool {
	return spec{
		name: "task_create", title: "Create a task",
		description: "Put a new open task on the shared board for any agent to claim.",
		hints:       additive,
		input: `{"type":"object","required":["title"],"additionalProperties":false,"properties":{
			` + actAs + `"title":{"type":"string","maxLength":200},
			"description":{"type":"string","maxLength":16384},` + graphProps + `
			"project":{"type":"string","description":"Project name, if any"}}}`,
		output:  taskSchema,
		example: `{"title":"Add a test for the login redirect","description":"auth/login_test.go"}`,
		oneTx:   true,
		handler: taskCreate,
	}.tool()
}

func taskCreate(ctx context.Context, c *Call) (Result, error) {
	var a taskCreateArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	if err := c.text("title", a.Title, task.MaxTitle, true, true); err != nil {
		return Result{}, err
	}
	if err := c.text("description", a.Description, task.MaxDescription, false, false); err != nil {
		return Result{}, err
	}
	pid, err := c.projectArg(ctx, a.Project)
	if err != nil {
		return Result{}, err
	}
	pl := task.Plan{Priority: &a.Priority, BlockedBy: &a.BlockedBy, Parent: &a.Parent, Skills: &a.Skills}
	// The task, the call's own record and a keyed call's result commit
	// together: one commit.
	var r Result
	_, err = task.CreateWith(ctx, c.Scope, task.New{Title: a.Title, Description: a.Description, Project: pid, Plan: pl}, oneTxHook(c, &r, func(t task.Task) Result {
		out, next := c.movedOut(ctx, t)
		where := ""
		if out.Project != "" {
			where = " in project " + out.Project
		}
		return Result{Structured: out, Text: fmt.Sprintf("Created task %s%s (version %d, open): %s. %s", out.TaskID, where, out.Version, out.Title, next)}
	}))
	if errors.Is(err, errKeyUsed) {
		return Result{}, err
	}
	if err != nil {
		return Result{}, c.graphError(err)
	}
	c.audited = true
	return r, nil
}

type taskListArgs struct {
	actingAs
	State   string `json:"state"`
	Project string `json:"project"`
	Mine    bool   `json:"mine"`
	Limit   int    `json:"limit"`
	Cursor  string `json:"cursor"`
}

type taskListOut struct {
	Tasks []taskOut `json:"tasks"`
	Next  string    `json:"next,omitempty"`
}

var taskStates = []string{"open", "claimed", "in_progress", "review", "done", "blocked", "cancelled"}

func taskListTool() *Tool {
	return spec{
		name: "task_list", title: "List tasks",
		description: "List tasks with state, assignee, version and readiness, oldest first.",
		hints:       readOnly,
		input: `{"type":"object","additionalProperties":false,"properties":{
			` + actAs + `"state":{"type":"string","enum":["open","claimed","in_progress","review","done","blocked","cancelled"]},
			"project":{"type":"string","description":"Project name"},
			"mine":{"type":"boolean","description":"Only tasks assigned to you"},
			"limit":{"type":"integer","minimum":1,"maximum":50},
			"cursor":{"type":"string","description":"Previous page's next"}}}`,
		output:  `{"type":"object","required":["tasks"],"properties":{"tasks":{"type":"array","items":` + taskSchema + `},"next":{"type":"string"}}}`,
		example: `{"state":"open"}`,
		handler: taskList,
	}.tool()
}

func taskList(ctx context.Context, c *Call) (Result, error) {
	var a taskListArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	limit, err := c.limit(a.Limit, defaultPage, maxPage)
	if err != nil {
		return Result{}, err
	}
	f := task.Filter{Limit: limit}
	if a.State != "" {
		if err := c.oneOf("state", a.State, taskStates...); err != nil {
			return Result{}, err
		}
		f.State = task.State(a.State)
	}
	if err := c.text("cursor", a.Cursor, maxIDArg, false, true); err != nil {
		return Result{}, err
	}
	f.After = a.Cursor
	if f.Project, err = c.projectArg(ctx, a.Project); err != nil {
		return Result{}, err
	}
	if a.Mine {
		if f.Assignee, err = c.me(); err != nil {
			return Result{}, err
		}
	}
	page, err := task.List(ctx, c.Scope, f)
	if err != nil {
		return Result{}, err
	}
	out := taskListOut{Tasks: make([]taskOut, 0, len(page.Tasks)), Next: page.Next}
	var names map[string]string
	if slices.ContainsFunc(page.Tasks, func(t task.Task) bool { return t.Assignee != "" }) {
		names = c.agentNames(ctx)
	}
	me := c.Scope.Principal().Agent
	var b strings.Builder
	for _, t := range page.Tasks {
		o := c.taskOut(ctx, t)
		o.Description = textclip.Clip(o.Description, maxListedDescription)
		out.Tasks = append(out.Tasks, o)
		b.WriteString(o.line(names, me))
		b.WriteByte('\n')
	}
	if len(out.Tasks) == 0 {
		b.WriteString("No tasks match.\n")
	}
	if out.Next != "" {
		fmt.Fprintf(&b, "More: call task_list again with cursor %q.\n", out.Next)
	}
	return Result{Structured: out, Text: strings.TrimSuffix(b.String(), "\n")}, nil
}

type taskClaimArgs struct {
	actingAs
	TaskID  string `json:"task_id"`
	Version int64  `json:"version"`
}

func taskClaimTool() *Tool {
	return spec{
		name: "task_claim", title: "Claim a task",
		description: "Claim an open task at the version task_list showed, or learn who was first.",
		hints:       additive,
		input: `{"type":"object","required":["task_id","version"],"additionalProperties":false,"properties":{
			` + actAs + `"task_id":{"type":"string"},"version":{"type":"integer","minimum":1}}}`,
		output:  taskSchema,
		example: `{"task_id":"tk_01JZ3K5V8Q2W7X9Y4N6M1P0R3T","version":1}`,
		oneTx:   true,
		handler: taskClaim,
	}.tool()
}

func taskClaim(ctx context.Context, c *Call) (Result, error) {
	var a taskClaimArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	id, version, err := c.taskAt(a.TaskID, a.Version)
	if err != nil {
		return Result{}, err
	}
	if err := c.actsAsWriter(); err != nil {
		return Result{}, err
	}
	var r Result
	_, err = task.ClaimWith(ctx, c.Scope, id, version, oneTxHook(c, &r, func(t task.Task) Result {
		out, next := c.movedOut(ctx, t)
		return Result{Structured: out, Text: fmt.Sprintf("You claimed task %s (now version %d): %s. %s", out.TaskID, out.Version, out.Title, next)}
	}))
	if errors.Is(err, errKeyUsed) {
		return Result{}, err
	}
	if err != nil {
		return Result{}, c.taskError(ctx, err, id, task.Claimed)
	}
	c.audited = true
	return r, nil
}

type taskUpdateArgs struct {
	actingAs
	TaskID    string    `json:"task_id"`
	Version   int64     `json:"version"`
	State     string    `json:"state"`
	Note      string    `json:"note"`
	Priority  *int      `json:"priority"`
	BlockedBy *[]string `json:"blocked_by"`
	Parent    *string   `json:"parent"`
	Skills    *[]string `json:"skills"`
}

func taskUpdateTool() *Tool {
	return spec{
		name: "task_update", title: "Move a task",
		description: "Move a task you hold or created to another state, or change its priority or dependencies, at its version.",
		hints:       additive,
		input: `{"type":"object","required":["task_id","version"],"additionalProperties":false,"properties":{
			` + actAs + graphProps + `"task_id":{"type":"string"},"version":{"type":"integer","minimum":1},
			"state":{"type":"string","enum":["open","in_progress","review","done","blocked","cancelled"]},
			"note":{"type":"string","maxLength":2000,"description":"Why, for the log"}}}`,
		output:  taskSchema,
		example: `{"task_id":"tk_01JZ3K5V8Q2W7X9Y4N6M1P0R3T","version":2,"state":"in_progress"}`,
		handler: taskUpdate,
	}.tool()
}

func taskUpdate(ctx context.Context, c *Call) (Result, error) {
	var a taskUpdateArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	id, version, err := c.taskAt(a.TaskID, a.Version)
	if err != nil {
		return Result{}, err
	}
	pl := task.Plan{Priority: a.Priority, BlockedBy: a.BlockedBy, Parent: a.Parent, Skills: a.Skills}
	changesPlan := pl != task.Plan{}
	switch a.State {
	case "":
		if !changesPlan {
			return Result{}, c.argError("send a state (in_progress, review, done, blocked, cancelled or open), or a priority, blocked_by, parent or skills")
		}
	case "claimed":
		return Result{}, c.argError("to claim a task call task_claim")
	}
	if a.State != "" {
		if err := c.oneOf("state", a.State, "open", "in_progress", "review", "done", "blocked", "cancelled"); err != nil {
			return Result{}, err
		}
	}
	if err := c.text("note", a.Note, task.MaxNote, false, true); err != nil {
		return Result{}, err
	}
	if err := c.Scope.CanWrite(); err != nil {
		return Result{}, err
	}
	// A person moves tasks through the operator surfaces; a tool caller
	// that acts as no agent gets no person's rights.
	if _, err := c.me(); err != nil {
		return Result{}, err
	}
	// A new plan and a move are two changes: the move is at the plan's
	// version.
	t := task.Task{Version: version}
	if changesPlan {
		if t, err = task.Replan(ctx, c.Scope, id, version, pl); err != nil {
			return Result{}, c.replanError(ctx, err, id)
		}
	}
	if a.State != "" {
		if t, err = task.Transition(ctx, c.Scope, id, t.Version, task.State(a.State), a.Note); err != nil {
			return Result{}, c.taskError(ctx, err, id, task.State(a.State))
		}
	}
	out, next := c.movedOut(ctx, t)
	return Result{Structured: out, Text: fmt.Sprintf("Task %s is %s (version %d, %s). %s", out.TaskID, out.State, out.Version, c.holding(ctx, t), next)}, nil
}

// graphError says how to send a task graph that the task layer refused: a
// blocker or parent that is not a task of the tenant, or a cycle.
func (c *Call) graphError(err error) error {
	var ee *task.EdgeError
	switch {
	case errors.As(err, &ee):
		return &toolError{err: err, msg: fmt.Sprintf("%s %s names no task of your tenant: use task ids from task_list", ee.Field, ee.ID)}
	case errors.Is(err, task.ErrInvalid) && strings.Contains(err.Error(), "cycle"):
		return &toolError{err: err, msg: err.Error() + "; drop that dependency"}
	}
	return err
}

type taskNextArgs struct {
	actingAs
	Project string `json:"project"`
}

type taskNextOut struct {
	Task *taskOut `json:"task,omitempty"`
	task.Backlog
}

func taskNextTool() *Tool {
	return spec{
		name: "task_next", title: "Take the next task",
		description: "Claim the highest-priority ready task (blockers done) that your capabilities cover.",
		hints:       additive,
		input: `{"type":"object","additionalProperties":false,"properties":{
			` + actAs + `"project":{"type":"string"}}}`,
		output:  `{"type":"object","properties":{"task":{"type":"object"},"held":{"type":"integer"}}}`,
		example: `{}`,
		oneTx:   true,
		handler: taskNext,
	}.tool()
}

func taskNext(ctx context.Context, c *Call) (Result, error) {
	var a taskNextArgs
	if err := decodeArgs(c, &a); err != nil {
		return Result{}, err
	}
	pid, err := c.projectArg(ctx, a.Project)
	if err != nil {
		return Result{}, err
	}
	if err := c.actsAsWriter(); err != nil {
		return Result{}, err
	}
	// The claim (or the finding that nothing is ready), the call's own
	// record and a keyed call's result commit together: one commit.
	var r Result
	_, _, _, err = task.ClaimNextWith(ctx, c.Scope, pid, oneTxHook(c, &r, func(p task.Pick) Result {
		b := p.Backlog
		out := taskNextOut{Backlog: b}
		if !p.OK {
			return Result{Structured: out, Text: fmt.Sprintf("Nothing ready for you: %d open tasks wait on blockers, %d need capabilities you have not declared (agent_update), %d are held by agents. "+
				"Call task_next again later, or read your inbox.", b.Waiting, b.Unskilled, b.Held)}
		}
		o, next := c.movedOut(ctx, p.Task)
		out.Task = &o
		return Result{Structured: out, Text: fmt.Sprintf("You claimed task %s (priority %d, version %d): %s. %s", o.TaskID, o.Priority, o.Version, o.Title, next)}
	}))
	if err != nil {
		return Result{}, err // errKeyUsed among them, as it is
	}
	c.audited = true
	return r, nil
}

// replanError rewrites Replan's refusals of a change to task id.
func (c *Call) replanError(ctx context.Context, err error, id string) error {
	var ve *task.VersionError
	if errors.As(err, &ve) {
		return &toolError{err: err, msg: fmt.Sprintf("task %s changed since version %d: it is now at version %d, %s and %s; if your change still fits, call again with version %d",
			id, ve.Expected, ve.Current.Version, ve.Current.State, c.holding(ctx, ve.Current), ve.Current.Version)}
	}
	if ge := c.graphError(err); ge != err {
		return ge
	}
	return c.taskError(ctx, err, id, task.Open)
}
