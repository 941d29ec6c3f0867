package keyspace

// Keys of the IDE bridge (storage/bridge): editors that announce
// themselves, and the requests agents route to them through the store.
//
//	("coditect", "t", tenant, "ide_editor", editor)            an editor's presence (user, projects, kinds, share, expiry)
//	("coditect", "t", tenant, "ide_bell", editor)              the editor's doorbell: bumped with every request (atomic add)
//	("coditect", "t", tenant, "ide_request", editor, request)  a request waiting for the editor's answer
//	("coditect", "t", tenant, "ide_answer", editor, request)   the editor's answer, read and cleared by the asker
//
// Element names are part of the on-disk format: never rename one.
const (
	elIDEEditor  = "ide_editor"
	elIDEBell    = "ide_bell"
	elIDERequest = "ide_request"
	elIDEAnswer  = "ide_answer"
)

// IDEEditors is ("ide_editor"): the presence of every editor.
func (t TenantSpace) IDEEditors() Subspace { return t.space().sub(elIDEEditor) }

// IDEEditor is ("ide_editor", editor): one editor connection's presence.
func (t TenantSpace) IDEEditor(editor string) ([]byte, error) {
	if err := checkID("editor", editor, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elIDEEditor, editor), nil
}

// IDEBell is ("ide_bell", editor): a counter every request to the editor
// bumps, so that the editor waits on one key's watch for its queue.
func (t TenantSpace) IDEBell(editor string) ([]byte, error) {
	if err := checkID("editor", editor, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elIDEBell, editor), nil
}

// IDERequests is ("ide_request", editor): the editor's queue.
func (t TenantSpace) IDERequests(editor string) (Subspace, error) {
	if err := checkID("editor", editor, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elIDERequest, editor), nil
}

// AllIDERequests is ("ide_request"): every editor's queue, for the sweeper.
func (t TenantSpace) AllIDERequests() Subspace { return t.space().sub(elIDERequest) }

// IDERequest is ("ide_request", editor, request).
func (t TenantSpace) IDERequest(editor, request string) ([]byte, error) {
	if err := checkID("editor", editor, MaxIDSize); err != nil {
		return nil, err
	}
	if err := checkID("request", request, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elIDERequest, editor, request), nil
}

// IDEAnswers is ("ide_answer", editor): the answers of one editor.
func (t TenantSpace) IDEAnswers(editor string) (Subspace, error) {
	if err := checkID("editor", editor, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elIDEAnswer, editor), nil
}

// AllIDEAnswers is ("ide_answer"): every editor's answers.
func (t TenantSpace) AllIDEAnswers() Subspace { return t.space().sub(elIDEAnswer) }

// IDEAnswer is ("ide_answer", editor, request).
func (t TenantSpace) IDEAnswer(editor, request string) ([]byte, error) {
	if err := checkID("editor", editor, MaxIDSize); err != nil {
		return nil, err
	}
	if err := checkID("request", request, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elIDEAnswer, editor, request), nil
}
