package kv

// Transaction size as FoundationDB counts it against MaxTransactionSize
// ("affected data", FDB's Known Limitations and its wiki page "Transaction
// size limit"): every mutation's bytes, plus each read and write conflict
// range's begin and end keys. Values read are not counted; snapshot reads
// add no conflict range and so count nothing. The functions take stored
// sizes (a backend's key prefix included) and may count a little more than
// FDB, which merges overlapping conflict ranges at commit, but never less.

// VersionstampOffsetSize is the 4-byte little-endian stamp offset FDB
// appends to a versionstamped key or value operand; it is part of the
// mutation.
const VersionstampOffsetSize = 4

// PointRangeSize is the size of the conflict range of one key, [key,
// key+"\x00"), and of the clear mutation of one key, which FDB sends as
// that range.
func PointRangeSize(key int) int { return 2*key + 1 }

// SetSize counts Set, Add and Max: the mutation (key and operand) and the
// key's write conflict range.
func SetSize(key, value int) int { return key + value + PointRangeSize(key) }

// ClearSize counts Clear: a one-key clear-range mutation and its write
// conflict range.
func ClearSize(key int) int { return 2 * PointRangeSize(key) }

// ClearRangeSize counts ClearRange: the mutation's bounds and the same
// bounds again as its write conflict range.
func ClearRangeSize(begin, end int) int { return 2 * (begin + end) }

// VersionstampedKeySize counts SetVersionstampedKey: the template with its
// stamp offset, the value, and the write conflict range FDB derives from
// the template (the template's length with one more byte at its end).
func VersionstampedKeySize(template, value int) int {
	return template + VersionstampOffsetSize + value + PointRangeSize(template)
}

// VersionstampedValueSize counts SetVersionstampedValue: the key, the
// template with its stamp offset, and the key's write conflict range.
func VersionstampedValueSize(key, template int) int {
	return key + template + VersionstampOffsetSize + PointRangeSize(key)
}

// ReadRangeSize counts a range read's read conflict range: its bounds.
func ReadRangeSize(begin, end int) int { return begin + end }
