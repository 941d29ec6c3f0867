package keyspace

import (
	"fmt"

	"github.com/coditect/coditect/storage/tuple"
)

// Keys of reviews (storage/review): a project's review policy, and the
// proposals agents' writes become under it until a person decides them.
//
//	("coditect", "t", tenant, "review_policy", project)          the project's policy (path globs, agents)
//	("coditect", "t", tenant, "review", proposal)                a proposal's record (file, agent, base hash, diff, state)
//	("coditect", "t", tenant, "review_blob", proposal, part, i)  chunk i of its base or new content (part "base" or "new")
//	("coditect", "t", tenant, "review_pending", proposal)        marker of a pending proposal
//
// Element names are part of the on-disk format: never rename one.
const (
	elReviewPolicy  = "review_policy"
	elReview        = "review"
	elReviewBlob    = "review_blob"
	elReviewPending = "review_pending"
)

// ReviewPolicy is ("review_policy", project): a project's review policy.
func (t TenantSpace) ReviewPolicy(project string) ([]byte, error) {
	if err := checkID("project", project, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elReviewPolicy, project), nil
}

// Reviews is ("review"): every proposal's record.
func (t TenantSpace) Reviews() Subspace { return t.space().sub(elReview) }

// Review is ("review", proposal): a proposal's record.
func (t TenantSpace) Review(id string) ([]byte, error) {
	if err := checkID("proposal", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elReview, id), nil
}

// ReviewBlob is ("review_blob", proposal, part): the chunks of one content
// of a proposal, part "base" (the file it was proposed against) or "new".
func (t TenantSpace) ReviewBlob(id, part string) (Subspace, error) {
	if err := checkID("proposal", id, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	if part != "base" && part != "new" {
		return Subspace{}, fmt.Errorf("keyspace: %w: review content part %q (want base or new)", ErrInvalidID, part)
	}
	return t.space().sub(elReviewBlob, id, part), nil
}

// ReviewBlobChunk is ("review_blob", proposal, part, i).
func (t TenantSpace) ReviewBlobChunk(id, part string, i int) ([]byte, error) {
	sub, err := t.ReviewBlob(id, part)
	if err != nil {
		return nil, err
	}
	return sub.Pack(tuple.Tuple{int64(i)}), nil
}

// ReviewBlobs is ("review_blob", proposal): both contents of a proposal.
func (t TenantSpace) ReviewBlobs(id string) (Subspace, error) {
	if err := checkID("proposal", id, MaxIDSize); err != nil {
		return Subspace{}, err
	}
	return t.space().sub(elReviewBlob, id), nil
}

// ReviewsPending is ("review_pending"): the markers of pending proposals.
func (t TenantSpace) ReviewsPending() Subspace { return t.space().sub(elReviewPending) }

// ReviewPending is ("review_pending", proposal).
func (t TenantSpace) ReviewPending(id string) ([]byte, error) {
	if err := checkID("proposal", id, MaxIDSize); err != nil {
		return nil, err
	}
	return t.space().strings(elReviewPending, id), nil
}
