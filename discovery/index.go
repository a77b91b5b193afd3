package discovery

// nextIndex returns the WaitIndex for the next blocking query, given the
// index used for the last one and the X-Consul-Index the answer carried,
// following Consul's blocking-query guidance:
//
//   - an index that went backwards (a server restored from a snapshot, a
//     dev agent restarted, a new leader with a different view) means the
//     old cursor is meaningless: start again from 0, which answers at once;
//   - an index of 0 after a real answer is a server bug that would make
//     every following query return at once and spin: clamp it to 1.
func nextIndex(last, got uint64) uint64 {
	if got < last {
		return 0
	}
	if got == 0 {
		return 1
	}
	return got
}
