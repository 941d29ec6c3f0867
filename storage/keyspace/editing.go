package keyspace

// Keys of the unsaved-edit marks that storage/attrib keeps for the IDE
// protocol and the files toolset's write guard (issue 7):
//
//	("coditect", "t", tenant, "file_editing", path, holder)   a human's unsaved edits of one file in one editor
const elFileEditing = "file_editing"

// FileEditing is ("file_editing", path, holder): the mark that the editor
// connection holder has unsaved edits of the file at path (an absolute
// path, up to MaxResourceSize bytes).
func (t TenantSpace) FileEditing(path, holder string) ([]byte, error) {
	if err := checkID("file path", path, MaxResourceSize); err != nil {
		return nil, err
	}
	if err := checkID("editor", holder, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elFileEditing, path, holder), nil
}

// FileEditors is ("file_editing", path): the marks of every editor with
// unsaved edits of the file at path.
func (t TenantSpace) FileEditors(path string) (Subspace, error) {
	if err := checkID("file path", path, MaxResourceSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elFileEditing, path), nil
}

// FileEditings is ("file_editing"): every unsaved-edit mark, for the
// sweeper that removes expired ones.
func (t TenantSpace) FileEditings() Subspace { return t.space().sub(elFileEditing) }
