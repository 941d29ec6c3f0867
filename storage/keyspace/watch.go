package keyspace

// Keys of the file-change evidence that storage/attrib keeps for the
// watcher (issue 5):
//
//	("coditect", "t", tenant, "file_evidence", path)   evidence about one file: who wrote which content
const elFileEvidence = "file_evidence"

// FileEvidence is ("file_evidence", path): the evidence recorded about one
// file (an absolute path), such as an agent's fs_write of a content hash or
// the IDE's save of one. path may be up to MaxResourceSize bytes.
func (t TenantSpace) FileEvidence(path string) ([]byte, error) {
	if err := checkID("file path", path, MaxResourceSize); err != nil {
		return nil, err
	}
	return t.space().strings(elFileEvidence, path), nil
}

// FileEvidences is ("file_evidence"): the evidence about every file, for
// the sweeper that removes expired records.
func (t TenantSpace) FileEvidences() Subspace { return t.space().sub(elFileEvidence) }
